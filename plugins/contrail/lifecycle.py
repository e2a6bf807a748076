"""Storage tiers as code: the lake bucket's lifecycle rules (hot → infrequent access → archive).

===============  ===================================  =======================================
prefix           tiers                                why
===============  ===================================  =======================================
``landing/``     STANDARD 0-29 d, STANDARD_IA from    the feature stage reads a partition in
                 30 d, GLACIER_IR from 180 d; never   its first days; later reads are rare
                 expires                              backfills. GLACIER_IR (Instant
                                                      Retrieval) rather than Flexible
                                                      Retrieval: a backfill must read a
                                                      year-old partition in milliseconds,
                                                      not after a restore job.
``stream/``      same tiers; expires after 400 d;     raw Firehose objects; compaction keeps a
                 noncurrent versions after 30 d       warm copy under ``warm/``, so the raw
                                                      objects only serve a re-compaction for
                                                      a year and a month (the bucket is
                                                      versioned: an expiry leaves a
                                                      noncurrent version that must go too)
``quarantine/``  no rule: kept in STANDARD, never     failed drops are evidence; they are few
                 expires                              and small, and people read them
(whole bucket)   abort incomplete multipart uploads   a crashed upload otherwise bills its
                 after 7 d                            parts forever, invisibly
===============  ===================================  =======================================

30 days is S3's minimum age for STANDARD_IA; 180 days leaves 90+ days in GLACIER_IR (its
minimum billed duration) before the stream expiry. S3 does not transition objects smaller
than 128 KB by default (they would cost more in IA than in STANDARD), which suits the small
daily files: only the large ones move.

``put_bucket_lifecycle_configuration`` replaces the whole configuration, so this module is
the bucket's one owner of lifecycle rules: add a zone's rule here, not elsewhere. On AWS the
same rules are in ``deploy/contrail.yaml`` (:func:`cloudformation_rules` is their template
form; a test keeps the two equal), and ``contrail bootstrap --check`` compares a bucket's
rules with these through :func:`rule_summary`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contrail import catalog

if TYPE_CHECKING:  # pragma: no cover
    from mypy_boto3_s3 import S3Client

INFREQUENT_ACCESS_AFTER_DAYS = 30
ARCHIVE_AFTER_DAYS = 180
ARCHIVE_STORAGE_CLASS = "GLACIER_IR"
STREAM_EXPIRE_AFTER_DAYS = 400
NONCURRENT_EXPIRE_AFTER_DAYS = 30
ABORT_MULTIPART_AFTER_DAYS = 7
TIERED_PREFIXES: tuple[str, ...] = (catalog.LANDING_ROOT, catalog.STREAM_ROOT)
KEPT_PREFIXES: tuple[str, ...] = (catalog.QUARANTINE_ROOT,)  # deliberately no rule at all


def _tiers() -> list[dict[str, Any]]:
    return [{"Days": INFREQUENT_ACCESS_AFTER_DAYS, "StorageClass": "STANDARD_IA"},
            {"Days": ARCHIVE_AFTER_DAYS, "StorageClass": ARCHIVE_STORAGE_CLASS}]


def lifecycle_configuration() -> dict[str, Any]:
    """The bucket's ``LifecycleConfiguration`` document (pure)."""
    return {"Rules": [
        {"ID": "landing-tiers", "Filter": {"Prefix": catalog.LANDING_ROOT}, "Status": "Enabled",
         "Transitions": _tiers()},
        {"ID": "stream-tiers-and-expiry", "Filter": {"Prefix": catalog.STREAM_ROOT}, "Status": "Enabled",
         "Transitions": _tiers(), "Expiration": {"Days": STREAM_EXPIRE_AFTER_DAYS},
         "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_EXPIRE_AFTER_DAYS}},
        {"ID": "abort-incomplete-multipart-uploads", "Filter": {"Prefix": ""}, "Status": "Enabled",
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_AFTER_DAYS}},
    ]}


def apply_lifecycle(s3: "S3Client", bucket: str) -> dict[str, Any]:
    """Put :func:`lifecycle_configuration` on ``bucket`` (replacing any rules); returns it."""
    configuration = lifecycle_configuration()
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=configuration)
    return configuration


def cloudformation_rules(configuration: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The same rules in ``AWS::S3::Bucket`` ``LifecycleConfiguration.Rules`` form (pure)."""
    rules = []
    for rule in (configuration or lifecycle_configuration())["Rules"]:
        out: dict[str, Any] = {"Id": rule["ID"], "Prefix": rule["Filter"]["Prefix"], "Status": rule["Status"]}
        if "Transitions" in rule:
            out["Transitions"] = [{"TransitionInDays": t["Days"], "StorageClass": t["StorageClass"]}
                                  for t in rule["Transitions"]]
        if "Expiration" in rule:
            out["ExpirationInDays"] = rule["Expiration"]["Days"]
        if "NoncurrentVersionExpiration" in rule:
            out["NoncurrentVersionExpiration"] = dict(rule["NoncurrentVersionExpiration"])
        if "AbortIncompleteMultipartUpload" in rule:
            out["AbortIncompleteMultipartUpload"] = dict(rule["AbortIncompleteMultipartUpload"])
        rules.append(out)
    return rules


def rule_summary(rules: list[dict[str, Any]]) -> dict[str, tuple]:
    """What each rule does, keyed by ID, from rules as S3 returns them (pure).

    S3 reports a rule's prefix as ``Filter.Prefix`` or, for rules put through CloudFormation's
    ``Prefix``, as the legacy top-level ``Prefix``; both read the same here.
    """
    summary = {}
    for rule in rules:
        prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
        summary[rule["ID"]] = (
            prefix, rule["Status"],
            tuple(sorted((t["Days"], t["StorageClass"]) for t in rule.get("Transitions", []))),
            (rule.get("Expiration") or {}).get("Days"),
            (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays"),
            (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation"),
        )
    return summary
