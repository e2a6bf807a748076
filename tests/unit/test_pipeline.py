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
