"""The upstream world, simulated from the real 2013 data: daily drops and a flight-event stream.

Produces what real producers would:

* **daily drops** — one gzip CSV export per dataset and day at
  ``incoming/<dataset>/<date>/<dataset>_<date>.csv.gz``. The gzip header carries no
  timestamp or file name (``mtime=0``), so re-dropping a day is byte-identical and the
  landing stage sees it as a no-op.
* **a flight-event stream** — one JSON schedule event per flight, put through the Kinesis
  Firehose API (``PutRecordBatch``, ≤500 records a call), newline-delimited, paced by a
  speed-up factor over the schedule's own clock. Firehose delivers objects under
  ``stream/flights/YYYY/MM/DD/HH/``. Events carry only what is known before departure:
  outcomes (``dep_time``, ``dep_delay``, ``arr_time``, ``arr_delay``, ``air_time``) are
  left out.

Times in the data are local (America/New_York) and naive; ``start``/``end`` of a replay are
naive local datetimes on the same clock. ``time_hour`` (UTC) rides along to join weather.

CLI: :func:`add_arguments` registers ``simulate drops`` and ``simulate stream`` on the
caller's sub-parsers; each sets ``args.handler(args) -> int``. The library functions
(:func:`drop_days`, :func:`replay_stream`, :func:`ensure_delivery_stream`) take boto3
clients so tests pass in-process moto ones.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from contrail import catalog, lake, nycflights
from contrail.stream.events import SCHEDULE_FIELDS, event_id

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_s3 import S3Client

DATASETS: tuple[str, ...] = ("flights", "weather")
STREAM_PREFIX = catalog.STREAM_PREFIX
# Firehose's own limits: 500 records and 4 MiB per PutRecordBatch call.
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_PUT_ATTEMPTS = 5
OUTCOME_FIELDS: frozenset[str] = frozenset({"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"})
LOCAL_ROLE_ARN = "arn:aws:iam::123456789012:role/contrail-firehose-delivery"


# --------------------------------------------------------------------------- daily drops


def drop_key(dataset: str, dt: date) -> str:
    """``incoming/<dataset>/<date>/<dataset>_<date>.csv.gz``."""
    return f"{catalog.incoming_prefix(dataset, dt)}{dataset}_{dt.isoformat()}.csv.gz"


def gzip_deterministic(data: bytes) -> bytes:
    """gzip with no timestamp and no file name in the header: same input, same bytes."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def drop_days(s3: "S3Client", bucket: str, days: Sequence[date], datasets: Sequence[str] = DATASETS,
              *, export: Callable[[str, date], bytes] = nycflights.day_csv) -> list[str]:
    """Drop each day's export of each dataset into ``incoming/``; returns the keys written.

    ``export(dataset, dt) -> CSV bytes`` defaults to the real data; tests pass small frames.
    Upstream may overwrite its own drop (that is how a corrected re-drop arrives).
    """
    keys = []
    for dt in days:
        for dataset in datasets:
            key = drop_key(dataset, dt)
            s3.put_object(Bucket=bucket, Key=key, Body=gzip_deterministic(export(dataset, dt)),
                          ContentType="application/gzip")
            keys.append(key)
    return keys


def day_range(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    if last < first:
        raise ValueError(f"last day {last} is before first day {first}")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# --------------------------------------------------------------------------- stream


def _plain(value: Any) -> Any:
    """A JSON-native value: numpy scalars unwrapped, NaN/NA as null."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def schedule_events(flights: "pd.DataFrame", start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    """One schedule event per flight departing in ``[start, end)`` (naive local), in time order.

    Pure over the frame. Ties keep the source order, so the sequence is deterministic.
    """
    import pandas as pd

    if end <= start:
        raise ValueError(f"end {end} must be after start {start}")
    days = pd.to_datetime(flights[["year", "month", "day"]])
    window = flights.loc[(days >= pd.Timestamp(start.date())) & (days <= pd.Timestamp(end.date()))]
    scheduled = pd.to_datetime(window[["year", "month", "day"]]) + pd.to_timedelta(
        window["hour"] * 60 + window["minute"], unit="min")
    mask = (scheduled >= pd.Timestamp(start)) & (scheduled < pd.Timestamp(end))
    window = window.loc[mask, list(SCHEDULE_FIELDS)].assign(_scheduled=scheduled.loc[mask])
    for record in window.sort_values("_scheduled", kind="stable").to_dict("records"):
        when = record.pop("_scheduled").to_pydatetime()
        event = {"event_id": event_id(record["carrier"], int(record["flight"]), record["origin"], when),
                 "event_time": when.isoformat()}
        event.update({name: _plain(record[name]) for name in SCHEDULE_FIELDS})
        yield event


def encode_event(event: dict[str, Any]) -> bytes:
    """One newline-terminated JSON line: Firehose concatenates records as they come."""
    return (json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n").encode()


def batches(records: Iterable[bytes], *, max_records: int = MAX_BATCH_RECORDS,
            max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[bytes]]:
    """Chunks within Firehose's per-call limits, order kept."""
    batch: list[bytes] = []
    size = 0
    for record in records:
        if batch and (len(batch) >= max_records or size + len(record) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += len(record)
    if batch:
        yield batch


def put_batch(firehose: "FirehoseClient", stream_name: str, records: list[bytes],
              *, sleep: Callable[[float], None] = time.sleep) -> None:
    """PutRecordBatch, re-sending only the records Firehose reports as failed (throttling)."""
    pending = records
    for attempt in range(MAX_PUT_ATTEMPTS):
        response = firehose.put_record_batch(DeliveryStreamName=stream_name,
                                             Records=[{"Data": r} for r in pending])
        if not response.get("FailedPutCount"):
            return
        pending = [r for r, res in zip(pending, response["RequestResponses"]) if res.get("ErrorCode")]
        sleep(0.2 * 2 ** attempt)
    raise RuntimeError(f"{len(pending)} records still rejected by Firehose stream {stream_name!r} "
                       f"after {MAX_PUT_ATTEMPTS} attempts")


@dataclass(frozen=True)
class ReplayStats:
    events: int
    batches: int
    bytes: int
    slept_s: float


def replay_stream(firehose: "FirehoseClient", stream_name: str, start: datetime, end: datetime,
                  speedup: float, sleep: Callable[[float], None] = time.sleep,
                  *, events: Iterable[dict[str, Any]] | None = None,
                  also: Callable[[list[bytes]], None] | None = None) -> ReplayStats:
    """Put the schedule events of ``[start, end)`` through Firehose, paced ``speedup``x real time.

    Events sharing a scheduled minute go out together (in ≤500-record calls); between
    minutes the replay sleeps the schedule gap divided by ``speedup`` (``math.inf``: no
    sleeping). ``events`` defaults to :func:`schedule_events` over the real flights.
    ``also`` receives each batch after Firehose took it (the Kinesis Data Stream: see
    :func:`kinesis_sink`); Firehose still lands every event in ``stream/`` for the warm tier.
    """
    if not speedup > 0:
        raise ValueError(f"speedup must be > 0, got {speedup}")
    if events is None:
        events = schedule_events(nycflights.load("flights"), start, end)
    n_events = n_batches = n_bytes = 0
    slept = 0.0
    clock: datetime | None = None
    group: list[bytes] = []

    def flush() -> None:
        nonlocal n_batches, n_bytes
        for batch in batches(group):
            put_batch(firehose, stream_name, batch, sleep=sleep)
            if also is not None:
                also(batch)
            n_batches += 1
            n_bytes += sum(map(len, batch))
        group.clear()

    for event in events:
        when = datetime.fromisoformat(event["event_time"])
        if clock is not None and when != clock:
            flush()
            wait = (when - clock).total_seconds() / speedup
            if wait > 0:
                sleep(wait)
                slept += wait
        clock = when
        group.append(encode_event(event))
        n_events += 1
    flush()
    return ReplayStats(events=n_events, batches=n_batches, bytes=n_bytes, slept_s=slept)


def kinesis_sink(kinesis: Any, stream_name: str) -> Callable[[list[bytes]], None]:
    """A batch sink putting records to a Kinesis Data Stream, one partition key per event."""
    from contrail.stream.kinesis import event_partition_key, put_records

    def put(batch: list[bytes]) -> None:
        put_records(kinesis, stream_name, batch, partition_key=event_partition_key)

    return put


def ensure_delivery_stream(firehose: "FirehoseClient", name: str, bucket_arn: str, role_arn: str,
                           *, prefix: str = STREAM_PREFIX, buffer_mb: int = 5, buffer_s: int = 60,
                           sleep: Callable[[float], None] = time.sleep, wait_s: float = 300) -> str:
    """Create (if absent) a DirectPut Firehose stream delivering to ``<bucket>/stream/flights/``.

    Objects land under ``prefix`` + ``YYYY/MM/DD/HH/`` (Firehose's default, UTC arrival
    time), uncompressed newline-delimited JSON; failed deliveries under
    ``deadletter/stream/flights/``. Returns the stream ARN once it is ACTIVE.
    """
    try:
        description = firehose.describe_delivery_stream(DeliveryStreamName=name)
    except firehose.exceptions.ResourceNotFoundException:
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": role_arn,
                "BucketARN": bucket_arn,
                "Prefix": prefix,
                "ErrorOutputPrefix": catalog.firehose_error_prefix(prefix),
                "BufferingHints": {"SizeInMBs": buffer_mb, "IntervalInSeconds": buffer_s},
                "CompressionFormat": "UNCOMPRESSED",
            },
        )
        description = firehose.describe_delivery_stream(DeliveryStreamName=name)
    deadline = time.monotonic() + wait_s
    while description["DeliveryStreamDescription"]["DeliveryStreamStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"Firehose stream {name!r} not ACTIVE after {wait_s:.0f} s")
        sleep(5)
        description = firehose.describe_delivery_stream(DeliveryStreamName=name)
    return description["DeliveryStreamDescription"]["DeliveryStreamARN"]


# --------------------------------------------------------------------------- CLI


def add_arguments(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``simulate drops`` and ``simulate stream``; each sets ``args.handler``."""
    simulate = subparsers.add_parser("simulate", help="play the upstream producers from the 2013 data")
    actions = simulate.add_subparsers(dest="simulate_command", required=True)

    drops = actions.add_parser("drops", help="drop daily gzip CSV exports into incoming/")
    drops.add_argument("--from", dest="first", type=date.fromisoformat, required=True,
                       help="first day, YYYY-MM-DD (2013)")
    drops.add_argument("--to", dest="last", type=date.fromisoformat,
                       help="last day, included (default: --from)")
    drops.add_argument("--dataset", dest="datasets", action="append", choices=DATASETS,
                       help="repeat to pick datasets (default: all)")
    drops.set_defaults(handler=handle_drops)

    stream = actions.add_parser("stream", help="replay flight schedule events through Firehose "
                                "(and the Kinesis Data Stream when CONTRAIL_STREAM_SOURCE=kinesis)")
    stream.add_argument("--start", type=datetime.fromisoformat, required=True,
                        help="local schedule time, e.g. 2013-01-01T05:00")
    stream.add_argument("--end", type=datetime.fromisoformat, required=True,
                        help="local schedule time, excluded")
    stream.add_argument("--speedup", type=float, default=60.0,
                        help="schedule seconds per wall second (default 60; 'inf' = no pacing)")
    stream.add_argument("--role-arn", default=None,
                        help="IAM role Firehose assumes to write the bucket (required on AWS)")
    stream.set_defaults(handler=handle_stream)


def handle_drops(args: argparse.Namespace) -> int:
    from contrail.settings import load_settings

    settings = load_settings()
    days = day_range(args.first, args.last or args.first)
    keys = drop_days(lake.s3_client(settings), settings.bucket, days, tuple(args.datasets or DATASETS))
    print(f"dropped {len(keys)} objects for {len(days)} day(s) into s3://{settings.bucket}/incoming/")
    return 0


def handle_stream(args: argparse.Namespace) -> int:
    from contrail.settings import load_settings

    settings = load_settings()
    role_arn = args.role_arn or (LOCAL_ROLE_ARN if settings.is_local else None)
    if role_arn is None:
        print("--role-arn is required outside the local stack")
        return 2
    firehose = lake.client("firehose", settings)
    ensure_delivery_stream(firehose, settings.firehose_stream, f"arn:aws:s3:::{settings.bucket}", role_arn)
    also = None
    if settings.stream_source == "kinesis":
        from contrail.stack.hot_tier import ensure_kinesis_stream

        kinesis = lake.client("kinesis", settings)
        ensure_kinesis_stream(kinesis, settings.kinesis_stream)
        also = kinesis_sink(kinesis, settings.kinesis_stream)
    stats = replay_stream(firehose, settings.firehose_stream, args.start, args.end, args.speedup, also=also)
    through = settings.firehose_stream + (f" and {settings.kinesis_stream}" if also else "")
    print(f"put {stats.events} events in {stats.batches} batches ({stats.bytes} bytes) through {through}")
    return 0
