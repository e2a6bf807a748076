"""
### Quality — the Great Expectations gate (`quality`)

Scheduled on the landing assets, not on a timer. One run validates the current version of
every landed partition that has no quality result yet (so a catch-up of 30 days is one run
and one GX import per dataset), with the suites in `expectations/`.

For every partition: the validation result goes to `quality/results/…`, Data Docs are
rebuilt and published to `quality/data-docs/` (URL in the task log). A pass writes the
`validated/<dataset>/dt=…/_pointer.json` and emits `validated_<dataset>`; a critical
failure quarantines the partition with its failing expectations, and the `gate` task fails
naming dataset, dt, version and every broken rule. Warnings are recorded, not blocking.

Triggered with a range (`from_date`, `to_date`, `rebuild`, `reason`; see `contrail.reruns`)
it re-validates that range: `changed` re-judges the days whose result records another suite
version than the committed suite (plus pending ones), `all` every current version in range.
A day that no longer passes loses its validated pointer and is quarantined; a day that now
passes gets its pointer back. The `validated_<dataset>` event lists the re-judged days.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, task

from contrail import assets
from contrail.dag_defaults import DEFAULT_ARGS, TAGS, rerun_params
from contrail.settings import DATASETS

with DAG(
    dag_id="quality",
    schedule=assets.landing("flights") | assets.landing("weather"),
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=rerun_params(),
    tags=[*TAGS, "quality"],
    doc_md=__doc__,
) as dag:
    for dataset in DATASETS:

        @task(task_id=f"validate_{dataset}", outlets=[assets.validated(dataset)])
        def validate(dataset: str = dataset, **context) -> list[dict]:
            from contrail.stages.quality import validate_task

            return validate_task(dataset, context)

        @task(task_id=f"gate_{dataset}")
        def gate(reports: list[dict]) -> None:
            from contrail.stages.quality import enforce_gate

            enforce_gate(reports)

        gate(validate())
