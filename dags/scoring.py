"""
### Scoring — batch predictions with the champion (`scoring`)

Scheduled on new feature partitions. Loads the champion once through the allow-list
(`registry.load_champion`, with the decision threshold stored on its version), scores every
published feature partition that has no prediction from that champion version yet, and
writes `predictions/<model>/dt=…/` (probability, label at the version's threshold, model
version, run id). Re-running
a partition gives the same output. With no champion registered yet, nothing is scored.

Re-run over a range (trigger form, `contrail rerun scoring`, or `POST /api/v2/dags/scoring/dagRuns`
with `conf`): `from_date`/`to_date` bound the days; `model_version` names a registered version to
score with instead of the champion (loaded through the same allow-list); `rebuild` is `pending`
(days not scored by that version from their current features build; `changed` is the same
here) or `all` (every published features day in the range, rescored — same model, same
features: the same keys and bytes).
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param, task

from contrail import assets
from contrail.dag_defaults import DEFAULT_ARGS, TAGS, rerun_params

with DAG(
    dag_id="scoring",
    schedule=assets.features() | assets.model(),
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "scoring", "mlflow"],
    doc_md=__doc__,
    params=rerun_params(model_version=Param(
        None, type=["null", "string", "integer"], title="Model version",
        description="a registered version to score with (empty: the champion)")),
) as dag:

    @task(outlets=[assets.predictions()])
    def score(**context) -> dict:
        from contrail.stages.scoring import score_task

        return score_task(context)

    score()
