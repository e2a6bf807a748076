"""The lake contract's pure rules: key layouts, what is pending for quality and features, and the
publish protocol (against moto)."""

from __future__ import annotations

from datetime import date, timedelta

import json

import pytest

from contrail import catalog
from contrail.catalog import PartitionVersion, current_versions, pending_validation
from contrail.stages.features import pending_feature_dates

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


def test_build_prefixes_are_inside_their_partition_and_ids_are_safe():
    part = catalog.features_partition("flights_v1", "2013-01-02")
    assert part == "features/flights_v1/dt=2013-01-02/"
    assert catalog.build_prefix(part, "abc123") == part + "b=abc123/"
    with pytest.raises(ValueError, match="build id"):
        catalog.build_prefix(part, "../escape")
    assert catalog.build_id("v1", "run", ["2013-01-02"]) == catalog.build_id("v1", "run", ["2013-01-02"])
    assert catalog.build_id("v1", "run", ["2013-01-02"]) != catalog.build_id("v2", "run", ["2013-01-02"])


BUCKET = "contrail-catalog"


@pytest.fixture
def s3(moto_s3):
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def _stage(s3, partition: str, build: str, body: bytes) -> dict:
    key = catalog.build_prefix(partition, build) + catalog.part_name(0)
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return {"dt": "2013-01-02", "rows": 1, "build": build, "parts": [key]}


def test_publish_swaps_the_manifest_then_marks_and_readers_see_only_named_parts(s3):
    partition = catalog.features_partition("fs", "2013-01-02")
    first = _stage(s3, partition, "b1", b"one")
    assert catalog.published(s3, BUCKET, "features/fs/") == {}  # staged is invisible
    catalog.publish_partition(s3, BUCKET, partition, first)
    seen = catalog.published(s3, BUCKET, "features/fs/")
    assert [p.parts for p in seen.values()] == [first["parts"]]
    assert catalog.published_days(s3, BUCKET, "features/fs/") == [date(2013, 1, 2)]

    second = _stage(s3, partition, "b2", b"two")  # a new build: the old one stays readable
    assert [p.manifest["build"] for p in catalog.published(s3, BUCKET, "features/fs/").values()] == ["b1"]
    catalog.publish_partition(s3, BUCKET, partition, second, marked=True)
    assert catalog.published_one(s3, BUCKET, partition).manifest["build"] == "b2"
    assert catalog.remove_stale_builds(s3, BUCKET, partition, keep=("b2",)) == 1
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=partition)["Contents"])
    assert keys == [partition + "_SUCCESS", partition + "_manifest.json", second["parts"][0]]


def test_publish_refuses_parts_outside_the_partition(s3):
    partition = catalog.features_partition("fs", "2013-01-02")
    with pytest.raises(ValueError, match="must name parts under"):
        catalog.publish_partition(s3, BUCKET, partition, {"dt": "2013-01-02", "parts": ["elsewhere/x.parquet"]})
    assert catalog.published_one(s3, BUCKET, partition) is None


def test_a_manifest_without_marker_is_not_published(s3):
    partition = catalog.features_partition("fs", "2013-01-03")
    manifest = _stage(s3, partition, "b1", b"x")
    s3.put_object(Bucket=BUCKET, Key=partition + "_manifest.json", Body=json.dumps({**manifest, "dt": "2013-01-03"}))
    assert catalog.published(s3, BUCKET, "features/fs/") == {}
    assert catalog.published_one(s3, BUCKET, partition) is None


def test_awaiting_landing_is_dropped_minus_landed_and_rejected():
    incoming = ["incoming/flights/2013-01-01/flights.csv.gz", "incoming/flights/2013-01-02/flights.csv.gz",
                "incoming/flights/2013-01-03/flights.csv.gz", "incoming/flights/2013-01-04/a.csv.gz",
                "incoming/flights/2013-01-04/b.csv.gz", "incoming/weather/2013-01-05/weather.csv.gz",
                "incoming/flights/README", "incoming/flights/not-a-day/x.csv"]
    landed = [catalog.landing_manifest_key("flights", "2013-01-01", 1),
              catalog.landing_manifest_key("weather", "2013-01-05", 1)]
    rejected = [catalog.landing_quarantine_key("flights", "2013-01-02", "ab" * 32, "flights.csv.gz"),
                # quality's reject of a landed version does not make a day landed
                catalog.quality_quarantine_prefix("flights", "2013-01-03", 1) + "reason.json"]
    assert catalog.awaiting_landing("flights", incoming, landed, rejected) == ["2013-01-03", "2013-01-04"]
    assert catalog.awaiting_landing("weather", incoming, landed, rejected) == []
