"""Pure orchestration rules in contrail.pipeline: what is pending for quality and features."""

from __future__ import annotations

from datetime import date, timedelta

from contrail.pipeline import (
    PartitionVersion,
    current_versions,
    pending_feature_dates,
    pending_validation,
)

M = "landing/flights/dt={dt}/v={v:04d}/_manifest.json"


def test_current_version_is_the_highest_with_a_manifest():
    keys = [M.format(dt="2013-01-01", v=1), M.format(dt="2013-01-01", v=2),
            "landing/flights/dt=2013-01-01/v=0003/flights.csv.gz",  # no manifest: invisible
            M.format(dt="2013-01-02", v=1)]
    assert current_versions(keys) == {"2013-01-01": 2, "2013-01-02": 1}


def test_pending_validation_skips_versions_with_results_and_heals_new_versions():
    manifests = [M.format(dt="2013-01-01", v=1), M.format(dt="2013-01-02", v=1),
                 M.format(dt="2013-01-02", v=2)]
    results = ["quality/results/flights/dt=2013-01-01/v=0001.json",
               "quality/results/flights/dt=2013-01-02/v=0001.json"]  # v1 failed earlier
    assert pending_validation(manifests, results) == [PartitionVersion("2013-01-02", 2)]
    assert pending_validation(manifests, []) == [PartitionVersion("2013-01-01", 1),
                                                 PartitionVersion("2013-01-02", 2)]


def _validated(days, version=1):
    entry = lambda d: {"version": version, "manifest": f"s3://b/{d}", "objects": [f"s3://b/{d}.csv.gz"]}
    return {"flights": {d: entry(d) for d in days}, "weather": {d: entry(d) for d in days}}


def test_features_pending_when_missing_or_inputs_changed():
    days = [date(2013, 1, 1) + timedelta(days=i) for i in range(4)]
    validated = _validated(days)
    assert pending_feature_dates(validated, {}) == days

    def built_for(dt):
        return {"flights": {d.isoformat(): 1 for d in days if dt - timedelta(days=28) <= d <= dt},
                "weather": {dt.isoformat(): 1}}

    built = {d: built_for(d) for d in days}
    assert pending_feature_dates(validated, built) == []
    # a corrected re-drop of Jan 2 (version 2) rebuilds Jan 2 and every later day whose window holds it
    validated["flights"][days[1]] = {**validated["flights"][days[1]], "version": 2}
    assert pending_feature_dates(validated, built) == days[1:]


def test_features_wait_until_every_dataset_is_validated():
    validated = _validated([date(2013, 1, 1)])
    validated["weather"] = {}
    assert pending_feature_dates(validated, {}) == []


def test_publish_requires_success_for_every_target_then_gates_and_emits(monkeypatch):
    import json
    from collections import defaultdict
    from types import SimpleNamespace

    import boto3
    import pytest
    from moto import mock_aws

    from contrail import pipeline

    gated = []
    monkeypatch.setattr(pipeline, "validate_feature_partitions",
                        lambda client, bucket, fs, dates: gated.append(list(dates)) or
                        [{"dt": d, "passed": True, "warnings": 1} for d in dates])
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        bucket = pipeline.settings().bucket
        s3.create_bucket(Bucket=bucket)
        planned = {"targets": ["2013-01-02", "2013-01-03"], "job_version": "0123456789ab",
                   "plan_uri": "s3://b/plan.json"}
        for dt, rows in (("2013-01-02", 901), ("2013-01-03", 877)):
            prefix = f"features/flights_v1/dt={dt}/"
            s3.put_object(Bucket=bucket, Key=prefix + "_manifest.json", Body=json.dumps({"dt": dt, "rows": rows}))
        s3.put_object(Bucket=bucket, Key="features/flights_v1/dt=2013-01-02/_SUCCESS", Body=b"")
        events = defaultdict(lambda: SimpleNamespace(extra=None))
        with pytest.raises(RuntimeError, match="dt=2013-01-03"):
            pipeline.publish_built_features(s3, planned, {"outlet_events": events})
        assert gated == []  # nothing is gated or emitted while a target is unpublished
        s3.put_object(Bucket=bucket, Key="features/flights_v1/dt=2013-01-03/_SUCCESS", Body=b"")
        extra = pipeline.publish_built_features(s3, planned, {"outlet_events": events},
                                                runner="emr", cluster_id="j-1")
    assert gated == [["2013-01-02", "2013-01-03"]]
    assert extra == {"feature_set": "flights_v1", "dates": ["2013-01-02", "2013-01-03"],
                     "rows": {"2013-01-02": 901, "2013-01-03": 877}, "warnings": 2,
                     "job_version": "0123456789ab", "plan_uri": "s3://b/plan.json",
                     "runner": "emr", "cluster_id": "j-1"}
    assert len(events) == 1 and next(iter(events.values())).extra == extra
