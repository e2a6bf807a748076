"""Landing's Airflow edge: land the drop of the run's data interval."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from contrail import connections
from contrail.landing import LandingResult, RunInfo, land_partition

log = logging.getLogger(__name__)


def land(s3, bucket: str, *, dataset: str, dt: date, run: RunInfo) -> LandingResult:
    """Land ``incoming/<dataset>/<dt>/`` (see :func:`contrail.landing.land_partition`)."""
    result = land_partition(s3, bucket, dataset=dataset, dt=dt, run=run)
    log.info("%s dt=%s version %s (%s rows, %s): %s", dataset, dt, result.version, result.rows,
             "landed" if result.created else "unchanged, no-op", result.manifest_uri)
    return result


def land_task(dataset: str, context: dict, s3: Any = None) -> dict:
    """The ``land`` task: sets the ``landing_<dataset>`` event extra. ``s3``: a client the task
    already holds (else one from the ``aws_default`` connection)."""
    from airflow.sdk.exceptions import AirflowFailException

    from contrail import assets
    from contrail.landing import BadDropError

    dag_id, run_id = connections.run_ids(context)
    run = RunInfo(dag_id=dag_id, run_id=run_id, landed_at=connections.start_time(context))
    try:
        result = land(s3 or connections.s3(), connections.settings().bucket, dataset=dataset,
                      dt=context["data_interval_start"].date(), run=run)
    except BadDropError as exc:
        raise AirflowFailException(str(exc)) from exc
    extra = result.as_asset_extra()
    context["outlet_events"][assets.landing(dataset)].extra = extra
    return extra
