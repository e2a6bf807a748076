"""Re-validating a range (``contrail.reruns``): which partitions a quality run re-judges, and
what a flipped verdict does to the validated pointer and quarantine. Stand-in engines judge
here (the subject is the selection and the commit); GX judges in the stage and e2e tests."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from contrail import catalog, lake, landing, nycflights, simulate
from contrail.landing import RunInfo
from contrail.quality import QualityReport, RuleFailure
from contrail.reruns import ALL, CHANGED, PENDING, Rerun
from contrail.stages import quality as quality_stage

DAYS = (date(2013, 3, 4), date(2013, 3, 5), date(2013, 3, 6))
DTS = [d.isoformat() for d in DAYS]
BUCKET = "contrail-reruns"
LANDED = RunInfo(dag_id="landing_flights", run_id="manual__1", landed_at="2026-12-01T00:00:00+00:00")


class MaxDistanceGate:
    """Stand-in engine: a partition with a ``distance`` above ``limit`` breaks a critical rule."""

    def __init__(self, docs: Path, limit: float):
        self.docs, self.limit = docs, limit

    def validate(self, df: pd.DataFrame, *, suite: str, dataset: str, dt: date, version: int) -> QualityReport:
        bad = int((pd.to_numeric(df["distance"]) > self.limit).sum())
        failures = (RuleFailure("critical", "expect_column_values_to_be_between", ("distance",),
                                f"max_value={self.limit}", unexpected_count=bad),) if bad else ()
        return QualityReport(dataset=dataset, dt=dt, version=version, suite=suite, passed=not bad,
                             row_count=len(df), failures=failures)

    def validate_many(self, partitions, *, suite: str, dataset: str) -> list[QualityReport]:
        return [self.validate(df, suite=suite, dataset=dataset, dt=dt, version=v) for df, dt, v in partitions]

    def build_data_docs(self) -> Path:
        return self.docs


def _manifest_keys(dts, version=1):
    return [catalog.landing_manifest_key("flights", dt, version) for dt in dts]


def _result_keys(pairs):
    return [catalog.quality_result_key("flights", dt, v) for dt, v in pairs]


# ---------------------------------------------------------------------------- the plan (pure)

def test_default_request_is_the_pending_rule():
    manifests = _manifest_keys(DTS) + [catalog.landing_manifest_key("flights", DTS[1], 2)]
    results = _result_keys([(DTS[0], 1), (DTS[1], 1)])
    pending, again = catalog.validation_plan(manifests, results, Rerun())
    assert pending == catalog.pending_validation(manifests, results)
    assert [(p.dt, p.version) for p in pending] == [(DTS[1], 2), (DTS[2], 1)] and again == []


@pytest.mark.parametrize("rebuild, stale, expected_again", [
    (PENDING, {(DTS[0], 1), (DTS[1], 1)}, []),
    (CHANGED, {(DTS[1], 1)}, [DTS[1]]),
    (CHANGED, {(DTS[2], 1)}, []),            # judged by another suite, but out of range: untouched
    (ALL, set(), [DTS[0], DTS[1]]),
])
def test_a_range_re_validates_what_its_mode_asks(rebuild, stale, expected_again):
    manifests = _manifest_keys(DTS) + _manifest_keys(["2013-03-03"])
    results = _result_keys([(DTS[0], 1), (DTS[1], 1), (DTS[2], 1)])
    rerun = Rerun(first=DAYS[0], last=DAYS[1], rebuild=rebuild)
    pending, again = catalog.validation_plan(manifests, results, rerun, stale=stale)
    assert pending == []  # 2013-03-03 is pending but outside the range
    assert [p.dt for p in again] == expected_again


def test_only_the_current_version_is_re_judged():
    manifests = _manifest_keys([DTS[0]]) + [catalog.landing_manifest_key("flights", DTS[0], 2)]
    results = _result_keys([(DTS[0], 1)])
    pending, again = catalog.validation_plan(manifests, results, Rerun(rebuild=ALL))
    assert [(p.dt, p.version) for p in pending] == [(DTS[0], 2)] and again == []
    assert catalog.judged_in_range(manifests, results + _result_keys([(DTS[0], 2)]), Rerun()) == [
        catalog.PartitionVersion(DTS[0], 2)]


# ---------------------------------------------------------------------------- the stage on moto

@pytest.fixture
def landed(moto_s3):
    moto_s3.create_bucket(Bucket=BUCKET)
    for dt in DAYS:
        frame = nycflights.day("flights", dt)
        body = gzip.compress(frame.to_csv(index=False, na_rep="NA").encode(), mtime=0)
        moto_s3.put_object(Bucket=BUCKET, Key=simulate.drop_key("flights", dt), Body=body)
        landing.land_partition(moto_s3, BUCKET, dataset="flights", dt=dt, run=LANDED)
    return moto_s3


def _run(s3, tmp_path, *, limit, run_id, rerun=Rerun()):
    return quality_stage.validate(s3, BUCKET, dataset="flights", run=quality_stage.QualityRun("quality", run_id),
                                  gate_factory=lambda: MaxDistanceGate(tmp_path, limit), rerun=rerun)


def _result(s3, dt):
    return lake.read_json(s3, BUCKET, catalog.quality_result_key("flights", dt, 1))


def _pointer(s3, dt):
    key = catalog.validated_pointer_key("flights", dt)
    return lake.read_json(s3, BUCKET, key) if lake.exists(s3, BUCKET, key) else None


def _reason(s3, dt):
    return lake.exists(s3, BUCKET, catalog.quality_quarantine_prefix("flights", dt, 1) + catalog.REASON)


def test_all_rewrites_the_range_and_records_the_request(landed, tmp_path):
    s3 = landed
    first, _ = _run(s3, tmp_path, limit=10_000, run_id="run-1")
    assert [r["passed"] for r in first] == [True, True, True]
    untouched = _result(s3, DTS[2])

    rerun = Rerun(first=DAYS[0], last=DAYS[1], rebuild=ALL, reason="distance rule re-checked")
    again, site = _run(s3, tmp_path, limit=10_000, run_id="run-2", rerun=rerun)
    assert [r["dt"] for r in again] == DTS[:2] and site == tmp_path
    for dt in DTS[:2]:
        result = _result(s3, dt)
        assert (result["run_id"], result["reason"], result["rerun"]) == ("run-2", rerun.reason, rerun.as_dict())
        assert result["previous"]["run_id"] == "run-1" and result["previous"]["passed"] is True
        assert _pointer(s3, dt)["run_id"] == "run-2"
    assert _result(s3, DTS[2]) == untouched and _pointer(s3, DTS[2])["run_id"] == "run-1"
    # nothing was pending: a pending-mode request over the same range validates nothing
    assert _run(s3, tmp_path, limit=10_000, run_id="run-3", rerun=Rerun(first=DAYS[0], last=DAYS[1])) == ([], None)

    event = quality_stage.validated_event("flights", again, rerun)
    assert event["revalidated"] == [{"dt": dt, "version": 1, "passed": True, "previous_passed": True}
                                    for dt in DTS[:2]]
    assert [p["dt"] for p in event["partitions"]] == DTS[:2] and event["rerun"] == rerun.as_dict()
    assert "revalidated" not in quality_stage.validated_event("flights", first, Rerun())


def test_changed_re_judges_only_results_of_another_suite_version(landed, tmp_path):
    s3 = landed
    _run(s3, tmp_path, limit=10_000, run_id="run-1")
    old = _result(s3, DTS[1])
    lake.put_json(s3, BUCKET, catalog.quality_result_key("flights", DTS[1], 1), {**old, "suite_version": "0ld"})
    again, _ = _run(s3, tmp_path, limit=10_000, run_id="run-2", rerun=Rerun(rebuild=CHANGED, reason="suite"))
    assert [r["dt"] for r in again] == [DTS[1]]
    assert _result(s3, DTS[1])["suite_version"] == old["suite_version"] != "0ld"
    assert _result(s3, DTS[1])["previous"]["suite_version"] == "0ld"
    assert _result(s3, DTS[0])["run_id"] == _result(s3, DTS[2])["run_id"] == "run-1"


def test_a_flipped_verdict_moves_the_day_between_validated_and_quarantine(landed, tmp_path):
    s3 = landed
    landed_keys = {o.key: o for o in lake.list_objects(s3, BUCKET, catalog.landing_zone("flights"))}
    _run(s3, tmp_path, limit=10_000, run_id="run-1")
    assert _pointer(s3, DTS[0]) and not _reason(s3, DTS[0])

    # a tightened rule: every real day has a flight over 2,000 miles, so the day fails now
    tight, _ = _run(s3, tmp_path, limit=2_000, run_id="run-2", rerun=Rerun(first=DAYS[0], last=DAYS[0], rebuild=ALL))
    assert [(r["dt"], r["passed"], r["previous_passed"]) for r in tight] == [(DTS[0], False, True)]
    assert _pointer(s3, DTS[0]) is None and _reason(s3, DTS[0])
    assert not _result(s3, DTS[0])["passed"] and _pointer(s3, DTS[1]) is not None
    with pytest.raises(Exception, match="quality gate failed"):
        quality_stage.enforce_gate(tight)

    # the rule relaxed again: the day passes, its pointer is back and its quarantine copy gone
    relaxed, _ = _run(s3, tmp_path, limit=10_000, run_id="run-3", rerun=Rerun(first=DAYS[0], rebuild=ALL))
    assert [(r["dt"], r["passed"], r["previous_passed"]) for r in relaxed] == [(dt, True, dt != DTS[0]) for dt in DTS]
    assert _pointer(s3, DTS[0])["run_id"] == "run-3" and not _reason(s3, DTS[0])
    assert list(lake.list_objects(s3, BUCKET, catalog.quality_quarantine_prefix("flights", DTS[0], 1))) == []
    assert _result(s3, DTS[0])["previous"]["passed"] is False
    # landed data is never touched by a verdict
    after = {o.key: o for o in lake.list_objects(s3, BUCKET, catalog.landing_zone("flights"))}
    assert sorted(after) == sorted(landed_keys)
