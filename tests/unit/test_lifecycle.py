"""Storage tiers as code: the rules say what the module promises, and S3 accepts them."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from contrail import lifecycle

BUCKET = "contrail-test-lake"


@pytest.fixture
def s3(moto_s3: Any) -> Iterator[Any]:
    moto_s3.create_bucket(Bucket=BUCKET)
    yield moto_s3


def rules_by_prefix() -> dict[str, dict[str, Any]]:
    return {rule["Filter"]["Prefix"]: rule for rule in lifecycle.lifecycle_configuration()["Rules"]}


def test_landing_and_stream_tier_down_and_only_stream_expires() -> None:
    rules = rules_by_prefix()
    tiers = [{"Days": 30, "StorageClass": "STANDARD_IA"}, {"Days": 180, "StorageClass": "GLACIER_IR"}]
    assert rules["landing/"]["Transitions"] == rules["stream/"]["Transitions"] == tiers
    assert "Expiration" not in rules["landing/"]
    assert rules["stream/"]["Expiration"] == {"Days": 400}
    assert all(rule["Status"] == "Enabled" for rule in rules.values())


def test_quarantine_is_kept_by_having_no_rule_that_reaches_it() -> None:
    for prefix, rule in rules_by_prefix().items():
        if "quarantine/".startswith(prefix):  # the bucket-wide rule only aborts stale uploads
            assert set(rule) == {"ID", "Filter", "Status", "AbortIncompleteMultipartUpload"}
    assert "quarantine/" not in rules_by_prefix()


def test_rule_ids_are_unique() -> None:
    ids = [rule["ID"] for rule in lifecycle.lifecycle_configuration()["Rules"]]
    assert len(ids) == len(set(ids))


def test_applied_rules_read_back_from_the_bucket(s3: Any) -> None:
    applied = lifecycle.apply_lifecycle(s3, BUCKET)
    lifecycle.apply_lifecycle(s3, BUCKET)  # idempotent: replaces, never accumulates

    stored = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]

    assert sorted(stored, key=lambda r: r["ID"]) == sorted(applied["Rules"], key=lambda r: r["ID"])
