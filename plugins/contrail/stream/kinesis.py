"""The second stream source: flight events read from a Kinesis Data Stream by shard, scored
exactly once with the Firehose path's own code (:func:`contrail.stream.ledger.process_keys`).

Per shard, one micro-batch at a time:

1. read records after the shard's **checkpoint** (the last sequence number done; from the
   shard's start the first time), up to ``max_records``;
2. keep them as one immutable lake object named by the batch's first sequence number
   (:func:`contrail.catalog.kinesis_batch_key`; newline-delimited JSON, one record a line: the
   Firehose object format). Written with a conditional PUT: after a crash the re-run starts at
   the same checkpoint, finds the object and takes *its* records, not a re-read that may hold
   more — so a batch is always the same batch;
3. score it through ``process_keys`` (event claims, outputs under deterministic keys, the
   object's ledger entry last);
4. move the checkpoint to the batch's last sequence number — the step's last write.

A crash before 4 re-runs 3, which finds the batch ledgered (or finishes it); an event a
producer put twice is claimed once, as on the Firehose path. Firehose keeps delivering the
same events to ``stream/`` for the warm tier; only one source is scored (``settings.stream_source``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from contrail import catalog, lake

if TYPE_CHECKING:  # pragma: no cover
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

MAX_PUT_RECORDS = 500  # PutRecords' limit
MAX_BATCH_RECORDS = 2000


# --------------------------------------------------------------------------- producer

def put_records(kinesis, stream: str, records: list[bytes], *, partition_key: Callable[[bytes], str],
                attempts: int = 6, sleep: Callable[[float], None] | None = None) -> None:
    """PutRecords in chunks of 500, re-sending only what the stream rejected (throttling)."""
    import time

    sleep = sleep or time.sleep
    for start in range(0, len(records), MAX_PUT_RECORDS):
        pending = records[start:start + MAX_PUT_RECORDS]
        for attempt in range(attempts):
            answer = kinesis.put_records(StreamName=stream, Records=[
                {"Data": r, "PartitionKey": partition_key(r)} for r in pending])
            if not answer.get("FailedRecordCount"):
                break
            pending = [r for r, res in zip(pending, answer["Records"]) if res.get("ErrorCode")]
            sleep(0.2 * 2 ** attempt)
        else:
            raise RuntimeError(f"{len(pending)} records still rejected by Kinesis stream {stream!r}")


def event_partition_key(record: bytes) -> str:
    """Records of one flight go to one shard (ordered there); shards spread by event id."""
    return str(json.loads(record)["event_id"])


# --------------------------------------------------------------------------- consumer

@dataclass(frozen=True)
class Batch:
    shard_id: str
    key: str
    first: str
    last: str
    records: int


def checkpoint(s3: "S3Client", bucket: str, stream: str, shard_id: str) -> str | None:
    key = catalog.kinesis_checkpoint_key(stream, shard_id)
    return lake.read_json(s3, bucket, key)["sequence_number"] if lake.exists(s3, bucket, key) else None


def _read(kinesis, stream: str, shard_id: str, after: str | None, max_records: int) -> list[dict[str, Any]]:
    if after is None:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    else:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                              StartingSequenceNumber=after,
                                              ShardIteratorType="AFTER_SEQUENCE_NUMBER")["ShardIterator"]
    records: list[dict[str, Any]] = []
    while iterator and len(records) < max_records:
        answer = kinesis.get_records(ShardIterator=iterator, Limit=min(10_000, max_records - len(records)))
        records += answer["Records"]
        iterator = answer.get("NextShardIterator")
        if not answer["Records"] or not answer.get("MillisBehindLatest"):
            break
    return records


def take_batch(s3: "S3Client", bucket: str, kinesis, stream: str, shard_id: str, *,
               max_records: int = MAX_BATCH_RECORDS) -> Batch | None:
    """The shard's next batch as a lake object (steps 1-2 of the module doc), or None if none."""
    after = checkpoint(s3, bucket, stream, shard_id)
    records = _read(kinesis, stream, shard_id, after, max_records)
    if not records:
        return None
    first = records[0]["SequenceNumber"]
    key = catalog.kinesis_batch_key(stream, shard_id, first)
    if lake.exists(s3, bucket, key):  # a crashed run's batch: the same batch again
        kept = lake.read_bytes(s3, bucket, key)
        lines = kept.splitlines()
        meta = lake.read_json(s3, bucket, key + ".json")
        return Batch(shard_id, key, first, meta["last"], len(lines))
    body = b"".join(r["Data"] if r["Data"].endswith(b"\n") else r["Data"] + b"\n" for r in records)
    last = records[-1]["SequenceNumber"]
    # the range first, then the batch: a batch object never exists without its range
    lake.put_json(s3, bucket, key + ".json", {"shard_id": shard_id, "first": first, "last": last,
                                             "records": len(records)})
    try:
        lake.put_immutable(s3, bucket, key, body, ContentType="application/x-ndjson")
    except lake.ImmutableObjectError:  # a concurrent run took it first: use its batch
        meta = lake.read_json(s3, bucket, key + ".json")
        return Batch(shard_id, key, first, meta["last"], meta["records"])
    return Batch(shard_id, key, first, last, len(records))


def commit(s3: "S3Client", bucket: str, stream: str, batch: Batch) -> None:
    """Step 4: the checkpoint moves past the batch (its last write)."""
    lake.put_json(s3, bucket, catalog.kinesis_checkpoint_key(stream, batch.shard_id),
                  {"sequence_number": batch.last, "batch": batch.key})


def shards(kinesis, stream: str) -> list[str]:
    out, token = [], None
    while True:
        answer = kinesis.list_shards(NextToken=token) if token else kinesis.list_shards(StreamName=stream)
        out += [s["ShardId"] for s in answer["Shards"]]
        token = answer.get("NextToken")
        if not token:
            return out


def consume(s3: "S3Client", bucket: str, kinesis, stream: str, *,
            process: Callable[[list[str]], dict[str, Any]], max_records: int = MAX_BATCH_RECORDS,
            shard_ids: Iterable[str] | None = None) -> dict[str, Any] | None:
    """One micro-batch over every shard: take each shard's batch, score them together, then move
    each checkpoint. Returns the ``process`` summary plus the batches, or None if nothing came."""
    batches = [b for b in (take_batch(s3, bucket, kinesis, stream, shard, max_records=max_records)
                           for shard in (shard_ids or shards(kinesis, stream))) if b is not None]
    if not batches:
        return None
    summary = process([b.key for b in batches])
    for batch in batches:
        commit(s3, bucket, stream, batch)
    summary["kinesis"] = {b.shard_id: {"first": b.first, "last": b.last, "records": b.records}
                          for b in batches}
    return summary
