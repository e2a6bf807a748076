"""A range re-validation through the real stack: after the batch pipeline has judged its days,
``quality`` is triggered over the REST API with a two-day range and ``rebuild=all``; exactly
those days' results (both datasets) are rewritten by that run, with its reason, the days
still pass, their validated pointers name the run, the emitted events list the re-judged
days, and every other day's result is byte for byte what it was.

Run alone, this module runs the batch pipeline first through its ``pipeline_run`` fixture.
"""

from __future__ import annotations

import hashlib

import pytest

from contrail import catalog, lake

from .test_pipeline_e2e import DAYS, pipeline_run  # noqa: F401 - the batch pipeline fixture

pytestmark = pytest.mark.e2e

DATASETS = ("flights", "weather")
RANGE = DAYS[:2]
REASON = "e2e: re-validate two days"
TIMEOUT = 900


def _results(s3, bucket: str) -> dict[str, str]:
    out = {}
    for ds in DATASETS:
        for obj in lake.list_objects(s3, bucket, catalog.quality_results_zone(ds)):
            out[obj.key] = hashlib.sha256(lake.read_bytes(s3, bucket, obj.key)).hexdigest()
    return out


def test_a_triggered_range_re_validates_exactly_its_days(stack, pipeline_run):
    from contrail.demo import wait_for
    from contrail.stack.api import TERMINAL, AirflowClient

    s3, bucket = lake.s3_client(stack), stack.bucket
    api = AirflowClient.for_local(stack)

    # nothing else of quality still running: the lake is the pipeline's judgement
    wait_for(lambda: all(r["state"] in TERMINAL for r in api.runs("quality")), "quality to be idle", TIMEOUT)
    before = _results(s3, bucket)
    assert all(lake.exists(s3, bucket, catalog.quality_result_key(ds, d, 1)) for ds in DATASETS for d in DAYS)

    run_id = "manual__rerun_quality_e2e"
    conf = {"from_date": RANGE[0].isoformat(), "to_date": RANGE[-1].isoformat(), "rebuild": "all",
            "reason": REASON}
    api.trigger("quality", conf=conf, run_id=run_id)
    run = wait_for(lambda: next((r for r in api.runs("quality")
                                 if r["dag_run_id"] == run_id and r["state"] in TERMINAL), None),
                   "the re-validation run to finish", TIMEOUT)
    assert run["state"] == "success", run

    after = _results(s3, bucket)
    assert set(after) == set(before)
    rewritten = {k for k in after if after[k] != before[k]}
    assert rewritten == {catalog.quality_result_key(ds, d, 1) for ds in DATASETS for d in RANGE}
    for ds in DATASETS:
        for day in RANGE:
            result = lake.read_json(s3, bucket, catalog.quality_result_key(ds, day, 1))
            assert (result["run_id"], result["reason"], result["passed"]) == (run_id, REASON, True)
            assert result["rerun"]["rebuild"] == "all" and result["previous"]["passed"] is True
            pointer = lake.read_json(s3, bucket, catalog.validated_pointer_key(ds, day))
            assert pointer["run_id"] == run_id
        untouched = lake.read_json(s3, bucket, catalog.quality_result_key(ds, DAYS[-1], 1))
        assert untouched["run_id"] != run_id and "rerun" not in untouched

    events = api.request("GET", "/assets/events", params={"source_dag_id": "quality", "source_run_id": run_id,
                                                          "limit": 100})["asset_events"]
    revalidated = {ev["extra"]["dataset"]: [p["dt"] for p in ev["extra"]["revalidated"]] for ev in events}
    assert revalidated == {ds: [d.isoformat() for d in RANGE] for ds in DATASETS}
