"""Exactly-once processing of stream objects: event claims, outputs under deterministic keys, the
ledger entry written last; the sweep's and the drain's work lists; reading predictions back.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from contrail import catalog, lake

from contrail.stream.events import (
    FIREHOSE_MAX_BUFFER,
    IO_THREADS,
    PREDICTION_STREAM_COLUMNS,
    ParsedObject,
    Rejected,
    event_day,
    parse_object,
)
from contrail.stream.lookups import FeatureLookups, stream_features

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mypy_boto3_s3 import S3Client


log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- processing

@dataclass(frozen=True)
class Scorer:
    """The champion, loaded once per task."""

    model: Any
    model_name: str
    model_version: str
    run_id: str
    threshold: float = 0.5


@dataclass
class ObjectResult:
    key: str
    status: str  # "processed" | "already_processed"
    events: int = 0
    scored: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0] if ":" in reason else reason


def claim_events(s3: "S3Client", bucket: str, objects: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                 *, pool: ThreadPoolExecutor | None = None) -> dict[str, str]:
    """Claim every event of ``objects`` (key, valid events; in delivery order); returns
    ``event_id -> owning object key``.

    An event carried by several objects of the batch is claimed once, for the first of them;
    an event claimed by an earlier batch keeps its owner. The conditional PUTs run on ``pool``
    (they wait on the network); ownership does not depend on their order.
    """
    first: dict[str, str] = {}
    for key, events in objects:
        for event in events:
            first.setdefault(event["event_id"], key)

    def claim(item: tuple[str, str]) -> str:
        event_id, key = item
        body = lake.json_bytes({"event_id": event_id, "object_key": key})
        try:
            lake.put_immutable(s3, bucket, catalog.claim_key(event_id), body, ContentType="application/json")
            return key
        except lake.ImmutableObjectError:
            return str(lake.read_json(s3, bucket, catalog.claim_key(event_id)).get("object_key"))

    owners = pool.map(claim, first.items()) if pool is not None else map(claim, first.items())
    return dict(zip(first, owners))


def split_by_owner(object_key: str, events: Sequence[Mapping[str, Any]],
                   owners: Mapping[str, str]) -> tuple[list[dict], list[Rejected]]:
    """The events ``object_key`` owns, and the others rejected as duplicates naming their owner (pure)."""
    mine, duplicates = [], []
    for event in events:
        owner = owners[event["event_id"]]
        if owner == object_key:
            mine.append(dict(event))
        else:
            duplicates.append(Rejected(0, f"duplicate event_id: already delivered in {owner}",
                                       json.dumps(event, sort_keys=True)))
    return mine, duplicates


def parquet_bytes(frame: "pd.DataFrame") -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf, compression="snappy")
    return buf.getvalue()


@dataclass
class _Claimed:
    """One object between its claims and its ledger entry."""

    key: str
    body: bytes
    parsed: ParsedObject
    events: list[dict]
    rejected: list[Rejected]


def _finish_object(s3: "S3Client", bucket: str, item: _Claimed, preds: "pd.DataFrame | None", *,
                   scorer: Scorer, processed_time: str) -> ObjectResult:
    """Write one object's outputs (deterministic keys), then its ledger entry, last."""
    written: list[str] = []
    if preds is not None and len(preds):
        for day, rows in preds.groupby("dt", sort=True):
            key = catalog.stream_predictions_key(scorer.model_name, day, item.key)
            frame = rows.loc[:, list(PREDICTION_STREAM_COLUMNS)].sort_values("event_id")
            # same key on a re-run: a killed task overwrites its own partial output
            s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes(frame.reset_index(drop=True)))
            written.append(key)
    if item.rejected:
        lake.put_json(s3, bucket, catalog.deadletter_key(item.key), {
            "object_key": item.key, "rejected": len(item.rejected),
            "records": [{"line": r.line, "reason": r.reason, "raw": r.raw} for r in item.rejected],
        })
    days = sorted({event_day(e) for e in item.parsed.events})
    for day in days:
        s3.put_object(Bucket=bucket, Key=catalog.day_index_key(day, item.key), Body=b"")

    counts = dict(sorted(Counter(_reason_kind(r.reason) for r in item.rejected).items()))
    lines = len(item.parsed.events) + len(item.parsed.rejected)
    entry = {
        "object_key": item.key, "object_sha256": lake.sha256_hex(item.body), "lines": lines,
        "scored": len(item.events), "rejected": counts, "days": days, "predictions": written,
        "deadletter": catalog.deadletter_key(item.key) if item.rejected else None,
        "model_name": scorer.model_name, "model_version": scorer.model_version,
        "processed_time": processed_time,
    }
    try:
        lake.put_immutable(s3, bucket, catalog.ledger_key(item.key), lake.json_bytes(entry),
                           ContentType="application/json")
    except lake.ImmutableObjectError:
        # a concurrent run (event path and sweep) finished the same object first; its
        # outputs have the same keys and rows, so there is nothing left to do
        return ObjectResult(item.key, "already_processed")
    log.info("%s: %d scored, rejected %s", item.key, len(item.events), counts or "none")
    return ObjectResult(item.key, "processed", events=lines, scored=len(item.events), rejected=counts,
                        days=days)


def unprocessed(s3: "S3Client", bucket: str, keys: Iterable[str], *,
                pool: ThreadPoolExecutor | None = None) -> list[str]:
    """The distinct ``keys`` with no ledger entry yet, in order (HEADs in parallel, on ``pool``
    or a pool of their own)."""
    unique = list(dict.fromkeys(keys))
    if pool is None:
        with ThreadPoolExecutor(IO_THREADS, thread_name_prefix="contrail-stream-io") as own:
            return unprocessed(s3, bucket, unique, pool=own)
    done = list(pool.map(lambda key: lake.exists(s3, bucket, catalog.ledger_key(key)), unique))
    return [key for key, d in zip(unique, done) if not d]


def _repeats(keys: Sequence[str]) -> list[str]:
    """Every occurrence of a key after its first (a notification delivered twice in one batch)."""
    seen: set[str] = set()
    repeats = []
    for key in keys:
        if key in seen:
            repeats.append(key)
        seen.add(key)
    return repeats


def process_keys(s3: "S3Client", bucket: str, keys: Iterable[str], *, scorer: Scorer, lookups: FeatureLookups,
                 processed_time: str | Callable[[], str], spark=None) -> dict[str, Any]:
    """Score every Firehose object in ``keys`` exactly once; returns a summary for the asset event.

    Per object: skip it if ledgered, else claim its events; then one feature + scoring pass
    over every claimed event of the batch (one Spark job, not one per object); then per
    object its outputs and, last, its ledger entry (see the module doc). Objects are read,
    claimed and finished in parallel; each object's ledger entry still follows its outputs.
    """
    from contrail import scoring

    keys = list(keys)
    unique = list(dict.fromkeys(keys))
    results = [ObjectResult(key, "already_processed") for key in _repeats(keys)]
    # every S3 round-trip below waits on the network, so they go out IO_THREADS at a time
    with ThreadPoolExecutor(IO_THREADS, thread_name_prefix="contrail-stream-io") as pool:
        todo = unprocessed(s3, bucket, unique, pool=pool)
        pending = set(todo)
        results += [ObjectResult(key, "already_processed") for key in unique if key not in pending]
        bodies = list(pool.map(lambda key: lake.read_bytes(s3, bucket, key), todo))
        parsed = [parse_object(body) for body in bodies]
        owners = claim_events(s3, bucket, [(key, p.events) for key, p in zip(todo, parsed)], pool=pool)
        claimed = []
        for key, body, parsed_object in zip(todo, bodies, parsed):
            mine, duplicates = split_by_owner(key, parsed_object.events, owners)
            claimed.append(_Claimed(key, body, parsed_object, mine, parsed_object.rejected + duplicates))

        events = [dict(e, _object_key=item.key) for item in claimed for e in item.events]
        by_object: dict[str, Any] = {}
        if events:
            features = stream_features(events, lookups, spark)
            preds = scoring.score(scorer.model, features, model_name=scorer.model_name,
                                  model_version=scorer.model_version, run_id=scorer.run_id,
                                  threshold=scorer.threshold)
            extra = features.set_index("flight_id")[["event_id", "event_time", "features_dt", "object_key"]]
            preds = preds.join(extra, on="flight_id")
            by_object = dict(tuple(preds.groupby("object_key", sort=False)))
        stamp = processed_time() if callable(processed_time) else processed_time

        def finish(item: _Claimed) -> ObjectResult:
            rows = by_object.get(item.key)
            if rows is not None:
                rows = rows.assign(processed_time=stamp)
            return _finish_object(s3, bucket, item, rows, scorer=scorer, processed_time=stamp)

        results += list(pool.map(finish, claimed))

    rejected: Counter[str] = Counter()
    for r in results:
        rejected.update(r.rejected)
    done = [r for r in results if r.status == "processed"]
    return {"objects": len(done), "already_processed": len(results) - len(done),
            "scored": sum(r.scored for r in done), "rejected": dict(sorted(rejected.items())),
            "days": sorted({d for r in done for d in r.days}), "model_version": scorer.model_version}


def unledgered(s3: "S3Client", bucket: str, *, modified_before: datetime | None = None,
               prefix: str | None = None) -> list[str]:
    """Firehose objects with no ledger entry, oldest key first (the sweep's work list).

    ``modified_before`` leaves the freshest objects to the event path (processing them twice
    concurrently would be safe, only wasted work).
    """
    prefix = catalog.STREAM_PREFIX if prefix is None else prefix
    done = {o.key for o in lake.list_objects(s3, bucket, catalog.OBJECTS_LEDGER)}
    out = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if modified_before is not None and obj["LastModified"] >= modified_before:
                continue
            if catalog.ledger_key(obj["Key"]) not in done:
                out.append(obj["Key"])
    return sorted(out)


def arrived_since(s3: "S3Client", bucket: str, since: datetime, until: datetime) -> list[str]:
    """Stream objects whose ``LastModified`` is at or after ``since``, in arrival order.

    Lists only the arrival-hour prefixes of ``[since, until]`` (one or two LISTs), never the
    whole stream zone.
    """
    found = []
    # an object's arrival prefix is when its buffer opened, up to Firehose's longest buffer
    # interval (900 s) before it was written
    for prefix in catalog.arrival_prefixes(since - FIREHOSE_MAX_BUFFER, until):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [(o["LastModified"], o["Key"]) for o in page.get("Contents", [])
                      if o["LastModified"] >= since]
    return [key for _, key in sorted(found)]


def merge_summaries(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Two :func:`process_keys` summaries of one run as one (pure)."""
    rejected = Counter(first.get("rejected", {}))
    rejected.update(second.get("rejected", {}))
    return {
        "objects": first["objects"] + second["objects"],
        "already_processed": first["already_processed"] + second["already_processed"],
        "scored": first["scored"] + second["scored"],
        "rejected": dict(sorted(rejected.items())),
        "days": sorted(set(first["days"]) | set(second["days"])),
        "model_version": second.get("model_version", first.get("model_version")),
    }


@dataclass(frozen=True)
class Drain:
    """How long an event-path run keeps taking objects that land while it runs.

    The run that an SQS notification started has the champion loaded and a Spark session
    open; objects landing meanwhile are scored by it within ``poll_s`` instead of waiting
    for the next run's start-up. It stops after ``idle_s`` without a new object, or at
    ``max_s`` in all; their notifications still start runs later, which find them ledgered.
    ``idle_s=0`` turns draining off.
    """

    idle_s: float = 20.0
    max_s: float = 300.0
    poll_s: float = 2.0
    lookback: timedelta = timedelta(seconds=60)


def drain(s3: "S3Client", bucket: str, *, handled: set[str], started: datetime, policy: Drain,
          process: Callable[[list[str]], dict[str, Any]],
          clock: Callable[[], datetime], sleep: Callable[[float], None]) -> dict[str, Any] | None:
    """Process objects arriving from ``started - lookback`` on that are not in ``handled``,
    until ``policy`` says stop; returns the merged summary (None if nothing came)."""
    if policy.idle_s <= 0:
        return None
    summary: dict[str, Any] | None = None
    since = started - policy.lookback
    last_new = clock()
    while True:
        now = clock()
        if (now - last_new).total_seconds() >= policy.idle_s or (now - started).total_seconds() >= policy.max_s:
            return summary
        fresh = [k for k in arrived_since(s3, bucket, since, now) if k not in handled]
        if fresh:
            handled.update(fresh)
            result = process(fresh)
            summary = result if summary is None else merge_summaries(summary, result)
            last_new = clock()
        else:
            sleep(policy.poll_s)


def read_predictions(s3: "S3Client", bucket: str, model_name: str,
                     dt: date | str | None = None) -> "pd.DataFrame":
    """Every stream prediction written so far (of one event day, or all), with the
    ``LastModified`` of its file as ``visible_time`` (when a reader could first see the row)."""
    import pandas as pd

    prefix = catalog.stream_predictions_prefix(model_name, dt)
    frames = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".parquet"):
                frame = pd.read_parquet(io.BytesIO(lake.read_bytes(s3, bucket, obj["Key"])))
                frames.append(frame.assign(visible_time=obj["LastModified"]))
    if not frames:
        return pd.DataFrame(columns=[*PREDICTION_STREAM_COLUMNS, "visible_time"])
    return pd.concat(frames, ignore_index=True)
