"""Re-scoring a range (moto S3): the range bounds it, ``all`` rescores what is up to date, and a
re-run with the same model on the same features writes the same keys and bytes."""

from __future__ import annotations

from datetime import date

import pytest

from contrail import catalog, lake
from contrail.reruns import ALL, CHANGED, Rerun
from contrail.stages import features as features_stage
from contrail.stages import scoring as scoring_stage
from test_fault_injection import (  # noqa: F401 - new_lake is a fixture
    FEATURE_SET, MODEL, DistanceGate, DistanceModel, _frame, _staged, new_lake,
)

DAYS = ["2013-03-04", "2013-03-05", "2013-03-06"]


@pytest.fixture
def published_lake(moto_s3, new_lake, tmp_path, monkeypatch):
    from contrail import scoring

    monkeypatch.setattr(scoring, "FEATURES", ("distance",))  # the stand-in model reads one column
    bucket = new_lake()
    features_stage.audit_and_publish(moto_s3, bucket, _staged(moto_s3, bucket, "b1", {d: _frame(d, 1000) for d in DAYS}),
                                     feature_set=FEATURE_SET, gate_factory=lambda: DistanceGate(tmp_path))
    return bucket


def _score(s3, bucket, version: str, rerun: Rerun = Rerun()) -> list[str]:
    return scoring_stage.score(s3, bucket, feature_set=FEATURE_SET, model_name=MODEL, model=DistanceModel(),
                               model_version=version, run_id=f"run-{version}", threshold=0.5, rerun=rerun)


def _versions(s3, bucket) -> dict[str, str]:
    return {d.isoformat(): p.manifest["model_version"]
            for d, p in catalog.published(s3, bucket, catalog.predictions_zone(MODEL)).items()}


def test_a_named_version_rescored_over_a_range_touches_only_that_range(moto_s3, published_lake):
    bucket = published_lake
    assert _score(moto_s3, bucket, "1") == DAYS
    rerun = Rerun(first=date(2013, 3, 5), last=date(2013, 3, 6), reason="compare v2")
    assert _score(moto_s3, bucket, "2", rerun) == DAYS[1:]
    assert _versions(moto_s3, bucket) == {DAYS[0]: "1", DAYS[1]: "2", DAYS[2]: "2"}
    published = catalog.published(moto_s3, bucket, catalog.predictions_zone(MODEL))
    assert published[date(2013, 3, 5)].manifest["reason"] == "compare v2"
    frame = catalog.read_published(moto_s3, bucket, published[date(2013, 3, 6)])
    assert set(frame["model_version"]) == {"2"}
    # up to date: pending and changed rescore nothing; the range is still respected
    assert _score(moto_s3, bucket, "2", rerun) == [] and _score(moto_s3, bucket, "2", Rerun(rebuild=CHANGED)) == [DAYS[0]]


def test_all_rescores_the_range_with_the_same_keys_and_bytes(moto_s3, published_lake):
    bucket = published_lake
    _score(moto_s3, bucket, "3")
    zone = catalog.predictions_zone(MODEL)

    def parts() -> dict[str, bytes]:
        return {o.key: lake.read_bytes(moto_s3, bucket, o.key) for o in lake.list_objects(moto_s3, bucket, zone)
                if "/b=" in o.key}

    before = parts()
    assert _score(moto_s3, bucket, "3", Rerun(first=date(2013, 3, 4), last=date(2013, 3, 5), rebuild=ALL)) == DAYS[:2]
    assert parts() == before
    assert _score(moto_s3, bucket, "3") == []
