"""Compaction: a day's stream events, through the ledger's day index, merged into the warm tier.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from contrail import catalog, lake

from contrail.stream.events import INT_FIELDS, event_day, parse_object, warm_columns
from contrail.stream.ledger import parquet_bytes

if TYPE_CHECKING:  # pragma: no cover
    from mypy_boto3_s3 import S3Client


log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- compaction

def compact_day(s3: "S3Client", bucket: str, dt: date | str) -> dict[str, Any]:
    """Merge the events of day ``dt`` from every indexed Firehose object into one Parquet file.

    Writes a build ``warm/stream/flights/dt=…/b=<sha16>/part-00000.parquet`` and publishes it (a
    ``_manifest.json`` naming the part and the sources, then ``_SUCCESS``). Valid events only (rejects are in the dead-letter zone), one row per ``event_id``
    (the first object in key order wins, the same rule as the claims in delivery order),
    sorted by ``event_time`` then ``event_id``. Deterministic: same inputs, same bytes, and an
    unchanged partition is not rewritten. Firehose originals are only read.
    """
    import pandas as pd

    day = catalog.dt_str(dt)
    index = catalog.day_index_prefix(day)
    sources = sorted(o.key[len(index):] for o in lake.list_objects(s3, bucket, index))
    columns = warm_columns()
    rows: dict[str, dict[str, Any]] = {}
    for source in sources:
        for event in parse_object(lake.read_bytes(s3, bucket, source)).events:
            if event_day(event) == day and event["event_id"] not in rows:
                rows[event["event_id"]] = {**{c: event.get(c) for c in columns}, "object_key": source}
    summary = {"dt": day, "rows": len(rows), "sources": len(sources), "key": None, "written": False}
    if not rows:
        return summary
    frame = pd.DataFrame(list(rows.values()), columns=list(columns))
    frame = frame.astype({c: "int64" for c in INT_FIELDS}).astype({"tailnum": "string"})
    frame = frame.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)
    body = parquet_bytes(frame)
    digest = lake.sha256_hex(body)
    build = digest[:16]
    partition = catalog.warm_prefix(day)
    current = catalog.published_one(s3, bucket, partition)
    key = catalog.build_prefix(partition, build) + "part-00000.parquet"
    if current is None or current.manifest.get("build") != build:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        previous_build = current.manifest.get("build") if current else None
        catalog.publish_partition(s3, bucket, partition, {
            "dt": day, "rows": len(rows), "sha256": digest, "sources": sources, "build": build,
            "parts": [key], "previous_build": previous_build}, marked=current is not None)
        catalog.remove_stale_builds(s3, bucket, partition, keep=(build, previous_build))
        summary["written"] = True
    summary.update(key=key, sha256=digest)
    return summary
