"""
### Landing — one DAG per dataset (`landing_flights`, `landing_weather`)

Daily, with catch-up over 2013. For the run's data interval the DAG waits — deferred, in the
triggerer, not in a worker slot — for upstream's drop under `incoming/<dataset>/<ds>/`,
then copies it into the immutable landing zone `landing/<dataset>/dt=<ds>/v=NNNN/` with a
manifest (keys, bytes, sha256, rows, header fingerprint, source keys, DAG and run id).

* Same content again: no-op. Changed re-drop: a new version beside the old one.
* Bad drop (any rule of `contrail.landing`: a wrong name or suffix, broken gzip, wrong header,
  a value the readers would parse differently, wrong date, duplicate, unsafe key): the object
  is quarantined with its reason and the task fails naming the key and rule. Marker files
  (`_SUCCESS`, names starting `_` or `.`) are ignored.
* Emits the `landing_<dataset>` asset with dt, version, manifest URI and rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, task

from contrail import assets, catalog
from contrail.dag_defaults import DEFAULT_ARGS, TAGS
from contrail.sensors import DropSensor
from contrail.settings import DATASETS, load_settings

settings = load_settings()

for dataset in DATASETS:
    with DAG(
        dag_id=f"landing_{dataset}",
        schedule="@daily",
        start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
        end_date=datetime(2013, 12, 31, tzinfo=timezone.utc),
        catchup=True,
        max_active_runs=2,
        default_args=DEFAULT_ARGS,
        tags=[*TAGS, "landing", dataset],
        doc_md=__doc__,
    ) as dag:
        wait_for_drop = DropSensor(
            task_id="wait_for_drop",
            dataset=dataset,
            aws_conn_id=settings.aws_conn_id,
            bucket_name=settings.bucket,
            drop_prefix=catalog.incoming_prefix(dataset, "{{ ds }}"),
            poke_interval=5 if settings.is_local else 60,
            timeout=timedelta(hours=6).total_seconds(),
            doc_md="Waits in the triggerer for upstream's drop for this data interval.",
        )

        @task(task_id="land", outlets=[assets.landing(dataset)])
        def land(dataset: str = dataset, **context) -> dict:
            from contrail.stages.landing import land_task

            return land_task(dataset, context)

        wait_for_drop >> land()

    globals()[dag.dag_id] = dag
