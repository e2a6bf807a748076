"""
### Scoring — batch predictions with the champion (`scoring`)

Scheduled on new feature partitions. Loads the champion once through the allow-list
(`registry.load_champion`, with the decision threshold stored on its version), scores every
published feature partition that has no prediction from that champion version yet, and
writes `predictions/<model>/dt=…/` (probability, label at the version's threshold, model
version, run id). Re-running
a partition gives the same output. With no champion registered yet, nothing is scored.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, task

from contrail import assets
from contrail.dag_defaults import DEFAULT_ARGS, TAGS

with DAG(
    dag_id="scoring",
    schedule=assets.features() | assets.model(),
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "scoring", "mlflow"],
    doc_md=__doc__,
) as dag:

    @task(outlets=[assets.predictions()])
    def score(**context) -> dict:
        from contrail.stages.scoring import score_task

        return score_task(context)

    score()
