"""
### Landing — one DAG per dataset (`landing_flights`, `landing_weather`)

Daily, with catch-up over 2013. One task, `land`, per run: for the run's data interval it
waits — deferred, in the triggerer, not in a worker slot — for upstream's drop under
`incoming/<dataset>/<ds>/` (a drop already there, as in a catch-up or backfill, is landed at
once in the same task instance), then copies it into the immutable landing zone `landing/<dataset>/dt=<ds>/v=NNNN/` with a
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

from airflow.sdk import DAG

from contrail import assets, catalog
from contrail.dag_defaults import DEFAULT_ARGS, LANDING_PRIORITY, TAGS
from contrail.sensors import DropLandingSensor
from contrail.settings import DATASETS, load_settings

settings = load_settings()
LANDING_MAX_ACTIVE_RUNS = 8

for dataset in DATASETS:
    with DAG(
        dag_id=f"landing_{dataset}",
        schedule="@daily",
        start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
        end_date=datetime(2013, 12, 31, tzinfo=timezone.utc),
        catchup=True,
        # one task instance per day: a catch-up keeps the executor's slots busy with landings
        max_active_runs=LANDING_MAX_ACTIVE_RUNS,
        # below every other stage: a catch-up's landings must not starve what follows them
        default_args={**DEFAULT_ARGS, "priority_weight": LANDING_PRIORITY},
        tags=[*TAGS, "landing", dataset],
        doc_md=__doc__,
    ) as dag:
        DropLandingSensor(
            task_id="land",
            dataset=dataset,
            outlets=[assets.landing(dataset)],
            aws_conn_id=settings.aws_conn_id,
            bucket_name=settings.bucket,
            drop_prefix=catalog.incoming_prefix(dataset, "{{ ds }}"),
            poke_interval=5 if settings.is_local else 60,
            timeout=timedelta(hours=6).total_seconds(),
            doc_md="Waits (in the triggerer) for upstream's drop for this data interval, then lands it.",
        )

    globals()[dag.dag_id] = dag
