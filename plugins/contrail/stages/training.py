"""Training's Airflow edge: train on the trailing window of published features, log to MLflow,
register the version and apply the promotion rule; or (``mode="backtest"``) a walk-forward
backtest over a range, which registers and promotes nothing."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from urllib.parse import quote
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from contrail import catalog, connections, lake

log = logging.getLogger(__name__)


def training_window(available: Iterable[date], *, window_days: int, window_end: date | None) -> list[date]:
    """Published days in the trailing window ending at ``window_end`` (default: the latest) (pure)."""
    days = sorted(available)
    if not days:
        return []
    end = window_end or days[-1]
    return [d for d in days if end - timedelta(days=window_days - 1) <= d <= end]


# the runs that stand for a period of their own; a manual run (the UI, the API, monitoring's
# retrain) is "now", whatever logical date its trigger stamped on it
PERIOD_RUN_TYPES = frozenset({"scheduled", "backfill"})


def window_end_for(*, window_end: str | None, to_date: date | None, data_interval_end: datetime | None,
                   run_type: str | None) -> date | None:
    """The last day a training run's window may use (pure): the ``window_end`` param, else the
    re-run's ``to_date``, else for a scheduled or backfilled run the day before its data
    interval ends (each week trains on its own weeks, not on whatever was published last);
    None — the latest published day — for a manual run."""
    if window_end:
        return date.fromisoformat(str(window_end)[:10])
    if to_date is not None:
        return to_date
    if data_interval_end is not None and str(run_type) in PERIOD_RUN_TYPES:
        return data_interval_end.astimezone(timezone.utc).date() - timedelta(days=1)
    return None


def git_commit() -> str:
    import subprocess

    from contrail.settings import REPO_ROOT

    env_commit = os.environ.get("CONTRAIL_GIT_COMMIT")
    if env_commit:
        return env_commit
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def quality_summary(client, bucket: str, partitions: list[catalog.PublishedPartition]) -> dict:
    """Did every input of these feature partitions pass its gate, at the version used?"""
    checked, warnings, problems = 0, 0, []
    for part in partitions:
        for dataset in ("flights", "weather"):
            version = part.manifest.get("inputs", {}).get(dataset, {}).get(part.dt.isoformat(), {}).get("version")
            key = catalog.quality_result_key(dataset, part.dt, int(version)) if version else None
            if key is None or not lake.exists(client, bucket, key):
                problems.append(f"{dataset} dt={part.dt}: no quality result")
                continue
            result = lake.read_json(client, bucket, key)
            checked += 1
            warnings += len(result.get("warnings", []))
            if not result.get("passed"):
                problems.append(f"{dataset} dt={part.dt} v{version}: failed its gate")
    return {"passed": not problems, "partitions_checked": checked, "warnings": warnings,
            "problems": problems[:50]}


@dataclass(frozen=True)
class Trained:
    """One fit on the lake's published features: what the DAG logs and the bench reports."""

    model_type: str
    params: dict[str, Any]
    threshold: float
    split: Any
    model: Any
    fit_metrics: dict[str, float]
    test_metrics: dict[str, float]
    parts: list[catalog.PublishedPartition]
    window: list[date]


def train_on_lake(s3, bucket: str, *, feature_set: str, model_type: str, params: Mapping[str, Any],
                  window_days: int, test_days: int, valid_days: int, window_end: date | None = None,
                  cost_ratio: float | None = None) -> Trained | None:
    """Read the trailing window of published features, split by date, fit ``model_type`` with
    ``params``, choose the threshold on the validation window (:func:`training.decide_threshold`)
    and measure on the test window. None if the window holds too few published days."""
    import pandas as pd

    from contrail import training

    published = catalog.published(s3, bucket, catalog.features_zone(feature_set))
    window = training_window(published, window_days=window_days, window_end=window_end)
    if len(window) < test_days + valid_days + 1:
        return None
    parts = [published[d] for d in window]
    frame = pd.concat([catalog.read_published(s3, bucket, p) for p in parts], ignore_index=True)
    split = training.split_by_date(frame, test_days=test_days, valid_days=valid_days)
    model, fit_metrics = training.train(split.train, split.valid, params, model_type)
    threshold = training.decide_threshold(model, split.valid, cost_ratio=cost_ratio)
    return Trained(model_type=model_type, params=training.effective_params(model_type, params),
                   threshold=threshold, split=split, model=model, fit_metrics=fit_metrics,
                   test_metrics=training.evaluate(model, split.test), parts=parts, window=window)


def backtest_on_lake(s3, bucket: str, *, feature_set: str, model_type: str, params: Mapping[str, Any],
                     first: date, last: date, window_days: int, valid_days: int, week_days: int = 7,
                     cost_ratio: float | None = None) -> list[dict[str, Any]]:
    """Walk forward over ``first..last``: per week (:func:`contrail.backtest.folds`), fit
    ``model_type`` on the ``window_days`` before it (the last ``valid_days`` choose the
    threshold) and measure on the week. One item per week: its ``fold`` and, when it had
    training, validation and test days, ``metrics``, ``fit_metrics``, ``threshold``, ``test_rows``."""
    import pandas as pd

    from contrail import backtest, training

    published = catalog.published(s3, bucket, catalog.features_zone(feature_set))
    plan = backtest.folds(published, first, last, window_days=window_days, valid_days=valid_days,
                          week_days=week_days)
    needed = sorted({d for f in plan if f.complete for d in (*f.train, *f.valid, *f.test)})
    frame = (pd.concat([catalog.read_published(s3, bucket, published[d]) for d in needed], ignore_index=True)
             if needed else None)
    out = []
    for fold in plan:
        if not fold.complete:
            out.append({"fold": fold, "status": "skipped: too few published days before or in the week"})
            continue
        split = backtest.fold_split(frame, fold)
        if training.labelled(split.train).empty or training.labelled(split.valid).empty:
            out.append({"fold": fold, "status": "skipped: no labelled rows to train or validate on"})
            continue
        model, fit_metrics = training.train(split.train, split.valid, params, model_type)
        threshold = training.decide_threshold(model, split.valid, cost_ratio=cost_ratio)
        out.append({"fold": fold, "metrics": training.evaluate(model, split.test), "fit_metrics": fit_metrics,
                    "threshold": threshold, "test_rows": len(training.labelled(split.test))})
        log.info("backtest week %s..%s: trained on %s..%s, test AUC %.3f", fold.week.first, fold.week.last,
                 fold.train[0], fold.valid[-1], out[-1]["metrics"].get("roc_auc", float("nan")))
    return out


def backtest_task(context: dict) -> dict[str, Any]:
    """The walk-forward backtest over the run's ``from_date..to_date``: every fold a nested child
    run of one parent MLflow run (weekly AUC table, mean, plot). Registers and promotes nothing."""
    import mlflow
    from airflow.sdk.exceptions import AirflowFailException

    from contrail import backtest, training
    from contrail.reruns import from_params

    cfg, client = connections.settings(), connections.s3()
    params = context["params"]
    rerun = from_params(params)
    if rerun.first is None or rerun.last is None:
        raise AirflowFailException("a backtest needs a range: set from_date and to_date")
    model_type = params["model_type"]
    cost_ratio = params.get("threshold_cost_ratio")
    sizes = {"window_days": int(params["window_days"]), "valid_days": int(params["valid_days"]),
             "week_days": int(params["backtest_week_days"])}
    fold_runs = backtest_on_lake(client, cfg.bucket, feature_set=cfg.feature_set, model_type=model_type,
                                 params=training.family_params(model_type, params), first=rerun.first,
                                 last=rerun.last, cost_ratio=None if cost_ratio is None else float(cost_ratio),
                                 **sizes)
    mlflow.set_tracking_uri(connections.mlflow_tracking_uri())
    mlflow.set_experiment("contrail-backtest")
    dag_id, run_id = connections.run_ids(context)
    logged = backtest.log_backtest(
        run_name=f"backtest {rerun.first}..{rerun.last} ({dag_id}:{run_id})",
        tags={"contrail.airflow.dag_id": dag_id, "contrail.airflow.run_id": run_id,
              "contrail.git_commit": git_commit(), "contrail.feature_set": cfg.feature_set},
        params={**training.effective_params(model_type, training.family_params(model_type, params)),
                "model_type": model_type, **sizes, "from_date": rerun.first.isoformat(),
                "to_date": rerun.last.isoformat(), "reason": (rerun.reason or "backtest")[:500]},
        fold_runs=fold_runs)
    log.info("backtest %s..%s: %d fold(s) ran, mean test AUC %s (parent run %s)", rerun.first, rerun.last,
             len(logged["child_run_ids"]), logged["mean_test_roc_auc"], logged["run_id"])
    return {k: logged[k] for k in ("run_id", "child_run_ids", "mean_test_roc_auc", "weeks")}


def _run_type(context: dict) -> str | None:
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return getattr(run_type, "value", run_type)


def train_task(context: dict) -> dict[str, Any]:
    """Train on the trailing window of published features, log to MLflow, register, promote."""
    import mlflow
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail import assets, model_story, monitoring, registry, training
    from contrail.reruns import from_params

    cfg, client = connections.settings(), connections.s3()
    params = context["params"]
    model_type = params["model_type"]
    cost_ratio = params.get("threshold_cost_ratio")
    split_params = {k: int(params[k]) for k in ("window_days", "test_days", "valid_days")}
    window_end = window_end_for(window_end=params.get("window_end"), to_date=from_params(params).last,
                                data_interval_end=context.get("data_interval_end"),
                                run_type=_run_type(context))
    trained = train_on_lake(
        client, cfg.bucket, feature_set=cfg.feature_set, model_type=model_type,
        params=training.family_params(model_type, params), window_end=window_end,
        cost_ratio=None if cost_ratio is None else float(cost_ratio), **split_params)
    if trained is None:
        raise AirflowSkipException(f"too few published feature days in the window ending {window_end or 'latest'}; "
                                   f"training needs at least {split_params['test_days'] + split_params['valid_days'] + 1}"
                                   " (set window_end or to_date to train on another window)")
    split, parts = trained.split, trained.parts
    quality = quality_summary(client, cfg.bucket, parts)
    mlflow_client = connections.mlflow_client()
    mlflow.set_experiment("contrail-training")
    dag_id, run_id = connections.run_ids(context)
    job_versions = sorted({p.manifest.get("job_version", "unknown") for p in parts})
    reason = params.get("reason") or "scheduled"
    logged = registry.log_training_run(
        model=trained.model, params=trained.params, model_type=model_type, threshold=trained.threshold,
        extra_params={**split_params, "threshold_rule": "best_f1" if cost_ratio is None else f"cost_ratio={cost_ratio}",
                      "reason": reason[:500]},
        metrics={**{f"fit_{k}": v for k, v in trained.fit_metrics.items()},
                 **{f"test_{k}": v for k, v in trained.test_metrics.items()}},
        split=split,
        partitions=[registry.FeaturePartition(p.dt.isoformat(), p.digest, p.uri) for p in parts],
        figures=training.figures(trained.model, split.test), feature_set=cfg.feature_set,
        dag_id=dag_id, dag_run_id=run_id, git_commit=git_commit(), job_version=",".join(job_versions),
        quality=quality, profile=monitoring.feature_profile(training.labelled(split.train)),
        run_name=f"{dag_id}:{run_id}",
    )
    decision, version = registry.promote_if_better(
        mlflow_client, cfg.model_name, logged, test_df=split.test, challenger_metrics=trained.test_metrics,
        margin=float(params["promotion_margin"]), quality_passed=quality["passed"],
        threshold=trained.threshold)
    window = trained.window
    model_story.tell_story(
        mlflow_client, cfg.model_name, version, decision,
        metrics={**{f"test_{k}": v for k, v in trained.test_metrics.items()},  # and the champion's, from the tags
                 **{k.removeprefix("contrail.metric."): float(v) for k, v in version.tags.items()
                    if k.startswith("contrail.metric.champion_test_")}},
        features=training.FEATURES, feature_set=cfg.feature_set,
        window=[window[0].isoformat(), window[-1].isoformat()], margin=float(params["promotion_margin"]),
        airflow_run_url=f"{cfg.airflow_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}")
    extra = {"model_name": cfg.model_name, "version": str(version.version), "run_id": logged.run_id,
             "experiment_id": mlflow_client.get_run(logged.run_id).info.experiment_id,  # the run's link
             "alias": decision.alias, "promoted": decision.promote, "reason": decision.reason,
             "model_type": model_type, "threshold": trained.threshold, "trigger": reason,
             "window": [window[0].isoformat(), window[-1].isoformat()],
             "test_roc_auc": trained.test_metrics.get("roc_auc")}
    log.info("model %s v%s (%s, threshold %.3f) → %s: %s", cfg.model_name, version.version, model_type,
             trained.threshold, decision.alias, decision.reason)
    context["outlet_events"][assets.model()].extra = extra
    return extra
