"""Every stage's commit survives a crash at any of its writes (see ``faults.py``): landing, quality,
the features audit-and-publish, and scoring. The stream ledger and compaction are crashed the same
way in ``test_stream.py``, beside their Spark fixtures.

The quality and features gates and the model are small stand-in engines here (the subject is the
commit order, not GX or sklearn); the real engines run in the stage and end-to-end tests.
"""

from __future__ import annotations

import gzip
import io
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from contrail import catalog, lake, landing, nycflights, simulate
from contrail.landing import RunInfo
from contrail.quality import QualityReport, RuleFailure
from contrail.stages import features as features_stage
from contrail.stages import quality as quality_stage
from contrail.stages import scoring as scoring_stage
from faults import crash_at_every_write

DAYS = (date(2013, 3, 4), date(2013, 3, 5))
RUN = RunInfo(dag_id="landing_flights", run_id="manual__1", landed_at="2026-12-01T00:00:00+00:00")
FEATURE_SET = "fs"
MODEL = "flight_delay"


class DistanceGate:
    """Stand-in quality engine: a partition with a negative ``distance`` breaks a critical rule."""

    def __init__(self, docs: Path):
        self.docs = docs

    def validate(self, df: pd.DataFrame, *, suite: str, dataset: str, dt: date, version: int) -> QualityReport:
        bad = int((pd.to_numeric(df["distance"]) < 0).sum())
        failures = (RuleFailure("critical", "expect_column_values_to_be_between", ("distance",),
                                "min_value=0", why="distances are positive", unexpected_count=bad),) if bad else ()
        return QualityReport(dataset=dataset, dt=dt, version=version, suite=suite, passed=not bad,
                             row_count=len(df), failures=failures)

    def validate_many(self, partitions, *, suite: str, dataset: str) -> list[QualityReport]:
        return [self.validate(df, suite=suite, dataset=dataset, dt=dt, version=v) for df, dt, v in partitions]

    def build_data_docs(self) -> Path:
        return self.docs


class DistanceModel:
    def predict_proba(self, x: pd.DataFrame):
        import numpy as np

        p = np.clip(x["distance"].to_numpy(dtype=float) / 3000.0, 0, 1)
        return np.column_stack([1 - p, p])


BUCKET = "contrail-faults"


@pytest.fixture
def new_lake(moto_s3):
    """``new_lake()`` -> the test bucket, emptied (one name, so runs compare byte for byte)."""
    moto_s3.create_bucket(Bucket=BUCKET)

    def make() -> str:
        lake.delete_keys(moto_s3, BUCKET, [o.key for o in lake.list_objects(moto_s3, BUCKET, "")])
        return BUCKET

    return make


def _drop(s3, bucket: str, dt: date, *, bad_distance: bool = False) -> None:
    frame = nycflights.day("flights", dt)
    if bad_distance:
        frame.loc[0, "distance"] = -1
    body = gzip.compress(frame.to_csv(index=False, na_rep="NA").encode(), mtime=0)
    s3.put_object(Bucket=bucket, Key=simulate.drop_key("flights", dt), Body=body)


def _landing_view(s3, bucket: str) -> dict[str, Any]:
    out = {}
    for dt in DAYS:
        manifest = landing.current_manifest(s3, bucket, "flights", dt)
        out[dt.isoformat()] = manifest and (manifest["version"], manifest["content_fingerprint"])
    return out


def test_landing_survives_a_crash_at_every_write(moto_s3, new_lake):
    def fresh():
        bucket = new_lake()
        _drop(moto_s3, bucket, DAYS[0])
        return moto_s3, bucket

    def step(s3, bucket):
        landing.land_partition(s3, bucket, dataset="flights", dt=DAYS[0], run=RUN)

    assert crash_at_every_write(fresh, step, _landing_view) >= 2


def _quality_view(s3, bucket: str) -> dict[str, Any]:
    """What readers trust: the validated pointer (features read it) and quarantine's reason.json
    (a person reads it). The result is quality's own "done" record, written after both."""
    out = {}
    for dt in DAYS:
        pointer = catalog.validated_pointer_key("flights", dt)
        reason = catalog.quality_quarantine_prefix("flights", dt, 1) + catalog.REASON
        out[dt.isoformat()] = (lake.exists(s3, bucket, pointer) and lake.read_json(s3, bucket, pointer)["version"],
                               lake.exists(s3, bucket, reason))
    return out


def _landed(s3, bucket: str) -> None:
    for dt, bad in zip(DAYS, (False, True)):
        _drop(s3, bucket, dt, bad_distance=bad)
        landing.land_partition(s3, bucket, dataset="flights", dt=dt, run=RUN)


def test_quality_survives_a_crash_at_every_write(moto_s3, new_lake, tmp_path):
    def fresh():
        bucket = new_lake()
        _landed(moto_s3, bucket)
        return moto_s3, bucket

    def step(s3, bucket):
        quality_stage.validate(s3, bucket, dataset="flights", gate_factory=lambda: DistanceGate(tmp_path),
                               run=quality_stage.QualityRun("quality", "run-1"))

    # a passing day: pointer, result; a failing day: quarantine copy, reason, result
    assert crash_at_every_write(fresh, step, _quality_view) == 5


class DayGate(DistanceGate):
    """Stand-in engine of a changed suite: the days in ``failing`` break a critical rule."""

    def __init__(self, docs: Path, failing: set[date]):
        super().__init__(docs)
        self.failing = failing

    def validate(self, df: pd.DataFrame, *, suite: str, dataset: str, dt: date, version: int) -> QualityReport:
        failures = (RuleFailure("critical", "expect_day", (), "", why="a tightened rule"),) if dt in self.failing else ()
        return QualityReport(dataset=dataset, dt=dt, version=version, suite=suite, passed=not failures,
                             row_count=len(df), failures=failures)


def _pointer_view(s3, bucket: str) -> dict[str, Any]:
    """What features trusts: the validated pointer of each day."""
    out = {}
    for dt in DAYS:
        pointer = catalog.validated_pointer_key("flights", dt)
        out[dt.isoformat()] = lake.exists(s3, bucket, pointer) and lake.read_json(s3, bucket, pointer)["run_id"]
    return out


def test_a_re_validation_that_flips_both_verdicts_survives_a_crash_at_every_write(moto_s3, new_lake, tmp_path):
    from contrail.reruns import ALL, Rerun

    def fresh():
        bucket = new_lake()
        _landed(moto_s3, bucket)  # the first day passes, the second is quarantined
        quality_stage.validate(moto_s3, bucket, dataset="flights", gate_factory=lambda: DistanceGate(tmp_path),
                               run=quality_stage.QualityRun("quality", "run-1"))
        return moto_s3, bucket

    def step(s3, bucket):
        quality_stage.validate(s3, bucket, dataset="flights", run=quality_stage.QualityRun("quality", "rerun-2"),
                               gate_factory=lambda: DayGate(tmp_path, {DAYS[0]}),
                               rerun=Rerun(first=DAYS[0], last=DAYS[1], rebuild=ALL, reason="tightened"))

    # pass -> fail: withdraw the pointer, copy, reason, result; fail -> pass: remove the
    # reason, then the copy, then the pointer and the result
    assert crash_at_every_write(fresh, step, _pointer_view) == 8
    s3, bucket = fresh()
    step(s3, bucket)
    assert _quality_view(s3, bucket) == {DAYS[0].isoformat(): (False, True), DAYS[1].isoformat(): (1, False)}


def test_a_crash_between_verdict_and_result_leaves_the_partition_pending(moto_s3, new_lake, tmp_path):
    from faults import FaultyS3, InjectedFault

    bucket = new_lake()
    _landed(moto_s3, bucket)
    run = quality_stage.QualityRun("quality", "run-1")
    gate = DistanceGate(tmp_path)
    with pytest.raises(InjectedFault):  # the second write is the first day's result
        quality_stage.validate(FaultyS3(moto_s3, fail_at=2), bucket, dataset="flights",
                               gate_factory=lambda: gate, run=run)
    manifests = [o.key for o in lake.list_objects(moto_s3, bucket, catalog.landing_zone("flights"))]
    results = [o.key for o in lake.list_objects(moto_s3, bucket, catalog.quality_results_zone("flights"))]
    assert [p.dt for p in catalog.pending_validation(manifests, results)] == [d.isoformat() for d in DAYS]


def _staged(s3, bucket: str, build: str, frames: dict[str, pd.DataFrame]) -> dict:
    for dt, frame in frames.items():
        partition = catalog.features_partition(FEATURE_SET, dt)
        key = catalog.build_prefix(partition, build) + catalog.part_name(0)
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        lake.put_json(s3, bucket, catalog.staged_manifest_key(partition, build),
                      {"dt": dt, "rows": len(frame), "parts": [key], "job_version": "j1", "inputs": {}})
    return {"targets": sorted(frames), "build": build, "job_version": "j1", "plan_uri": "s3://x/plan.json"}


def _frame(dt: str, distance: int) -> pd.DataFrame:
    return pd.DataFrame({"flight_id": [f"UA-1-EWR-{dt}"], "dt": [dt], "distance": [distance]})


def _published_view(zone: str):
    def view(s3, bucket: str) -> dict[str, Any]:
        return {d.isoformat(): (p.manifest["build"], p.parts)
                for d, p in catalog.published(s3, bucket, zone).items()}
    return view


def test_features_audit_and_publish_survives_a_crash_at_every_write(moto_s3, new_lake, tmp_path):
    days = [d.isoformat() for d in DAYS]

    def fresh():
        bucket = new_lake()
        old = _staged(moto_s3, bucket, "old", {d: _frame(d, 100) for d in days})
        features_stage.audit_and_publish(moto_s3, bucket, old, feature_set=FEATURE_SET,
                                         gate_factory=lambda: DistanceGate(tmp_path))
        return moto_s3, bucket

    def step(s3, bucket):
        # a rebuild: the second day's new build fails its gate and must keep the old build
        planned = _staged(moto_s3, bucket, "new", {days[0]: _frame(days[0], 200), days[1]: _frame(days[1], -5)})
        outcome = features_stage.audit_and_publish(s3, bucket, planned, feature_set=FEATURE_SET,
                                                   gate_factory=lambda: DistanceGate(tmp_path))
        assert outcome["rows"] == {days[0]: 1} and len(outcome["failed"]) == 1

    view = _published_view(catalog.features_zone(FEATURE_SET))
    assert crash_at_every_write(fresh, step, view) >= 3


def test_a_failed_gate_publishes_nothing_and_keeps_the_previous_build(moto_s3, new_lake, tmp_path):
    bucket = new_lake()
    day = DAYS[0].isoformat()
    gate = lambda: DistanceGate(tmp_path)  # noqa: E731
    features_stage.audit_and_publish(moto_s3, bucket, _staged(moto_s3, bucket, "good", {day: _frame(day, 100)}),
                                     feature_set=FEATURE_SET, gate_factory=gate)
    outcome = features_stage.audit_and_publish(moto_s3, bucket, _staged(moto_s3, bucket, "bad", {day: _frame(day, -1)}),
                                               feature_set=FEATURE_SET, gate_factory=gate)
    assert outcome["rows"] == {} and "distance" in outcome["failed"][0]
    (published,) = catalog.published(moto_s3, bucket, catalog.features_zone(FEATURE_SET)).values()
    assert published.manifest["build"] == "good"
    assert catalog.read_published(moto_s3, bucket, published)["distance"].tolist() == [100]
    # the failed build's verdict is kept beside the partition's other results
    result = lake.read_json(moto_s3, bucket, catalog.features_gate_result_key(FEATURE_SET, day, "bad"))
    assert result["passed"] is False and result["build"] == "bad"


def test_audit_refuses_a_target_the_job_did_not_stage(moto_s3, new_lake, tmp_path):
    bucket = new_lake()
    planned = _staged(moto_s3, bucket, "b1", {DAYS[0].isoformat(): _frame(DAYS[0].isoformat(), 1)})
    planned["targets"].append(DAYS[1].isoformat())
    with pytest.raises(RuntimeError, match="was not staged"):
        features_stage.audit_and_publish(moto_s3, bucket, planned, feature_set=FEATURE_SET,
                                         gate_factory=lambda: DistanceGate(tmp_path))
    assert catalog.published(moto_s3, bucket, catalog.features_zone(FEATURE_SET)) == {}


def test_scoring_survives_a_crash_at_every_write(moto_s3, new_lake, tmp_path, monkeypatch):
    from contrail import scoring

    monkeypatch.setattr(scoring, "FEATURES", ("distance",))  # the stand-in model reads one column
    days = [d.isoformat() for d in DAYS]

    def fresh():
        bucket = new_lake()
        planned = _staged(moto_s3, bucket, "b1", {d: _frame(d, 1000) for d in days})
        features_stage.audit_and_publish(moto_s3, bucket, planned, feature_set=FEATURE_SET,
                                         gate_factory=lambda: DistanceGate(tmp_path))
        return moto_s3, bucket

    def step(s3, bucket):
        scoring_stage.score(s3, bucket, feature_set=FEATURE_SET, model_name=MODEL, model=DistanceModel(),
                            model_version="3", run_id="run-3", threshold=0.5)

    # per day: the part, the manifest, then _SUCCESS
    assert crash_at_every_write(fresh, step, _published_view(catalog.predictions_zone(MODEL))) == 6


def test_a_rerun_of_a_failed_quality_run_fails_again_with_the_same_rules(moto_s3, new_lake, tmp_path):
    bucket = new_lake()
    _landed(moto_s3, bucket)
    run = quality_stage.QualityRun("quality", "run-1")
    gate = lambda: DistanceGate(tmp_path)  # noqa: E731
    first, _ = quality_stage.validate(moto_s3, bucket, dataset="flights", gate_factory=gate, run=run)
    assert [(r["dt"], r["passed"]) for r in first] == [(DAYS[0].isoformat(), True), (DAYS[1].isoformat(), False)]

    # the same run again (its triggering events name both days): nothing is pending, yet it
    # answers for both, and the failed day fails again with the rule it broke
    engines = []
    again, site = quality_stage.validate(moto_s3, bucket, dataset="flights", run=run,
                                         gate_factory=lambda: engines.append(1) or DistanceGate(tmp_path),
                                         answers_for=[d.isoformat() for d in DAYS])
    assert engines == [] and site is None  # nothing was validated twice
    assert [(r["dt"], r["passed"]) for r in again] == [(r["dt"], r["passed"]) for r in first]
    assert again[1]["summary"] == first[1]["summary"] and "distance" in again[1]["summary"]
    with pytest.raises(Exception, match="quality gate failed"):
        quality_stage.enforce_gate(again)

    # a run that answers for nothing and finds nothing pending reports nothing (and passes)
    assert quality_stage.validate(moto_s3, bucket, dataset="flights", gate_factory=gate, run=run) == ([], None)

    # a corrected drop is a new version: validated anew, and the day heals
    _drop(moto_s3, bucket, DAYS[1])
    landing.land_partition(moto_s3, bucket, dataset="flights", dt=DAYS[1], run=RUN)
    healed, _ = quality_stage.validate(moto_s3, bucket, dataset="flights", gate_factory=gate, run=run,
                                       answers_for=[DAYS[1].isoformat()])
    assert [(r["dt"], r["version"], r["passed"]) for r in healed] == [(DAYS[1].isoformat(), 2, True)]
