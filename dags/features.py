"""
### Features — Spark feature build (`features`)

Scheduled when both validated assets have new events. One run plans every validated
partition still pending (new, or whose validated version changed) plus the 28-day lookback
its trailing windows need, so a year of upstream backfill starts a handful of jobs, not 365.
In local mode the job runs through `spark-submit` on `local[*]` with the content-hashed
artifact; output lands in `features/<set>/dt=…/` with `_SUCCESS` and a manifest, and the
`features_<set>` asset is emitted with the built dates.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, task

from contrail import assets
from contrail.dag_defaults import DEFAULT_ARGS, TAGS

with DAG(
    dag_id="features",
    schedule=assets.validated("flights") & assets.validated("weather"),
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "features", "spark"],
    doc_md=__doc__,
) as dag:

    @task
    def plan(**context) -> dict:
        """Write the plan JSON for every pending date; returns its URI and the targets."""
        from contrail.pipeline import plan_pending_features

        return plan_pending_features(context)

    @task(outlets=[assets.features()])
    def build(planned: dict, **context) -> dict:
        """Run the Spark job on the plan (local spark-submit) and check what it published."""
        from contrail.pipeline import build_features_local

        return build_features_local(planned, context)

    build(plan())
