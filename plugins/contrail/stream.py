"""The micro-batch path: Firehose objects in, scored flights out, each event exactly once.

Consumes the newline-delimited JSON objects Firehose delivers under
``stream/flights/YYYY/MM/DD/HH/`` (one schedule event per line, see
:mod:`contrail.simulate`), named by S3 notifications on the stream queue or found by the
sweep. Produces, per object:

* ``predictions/<model>/stream/dt=<event day>/<object-sha>.parquet`` — one row per valid,
  first-seen event: ``event_id``, ``flight_id``, ``dt``, ``event_time``, ``processed_time``,
  ``probability``, ``label``, ``model_name``, ``model_version``, ``run_id``, ``features_dt``
  (the batch partition the look-ups came from) and ``object_key``;
* ``deadletter/stream/invalid/flights/<object-sha>.json`` — every rejected line with its
  reason (malformed JSON, missing field, wrong type, inconsistent schedule, duplicate
  ``event_id``); the rest of the object goes on;
* the **ledger** under ``ledger/stream/flights/`` (``stream/`` itself is read-only to us):

  - ``events/<sha(event_id)>.json`` — a claim, created with an S3 conditional write: the
    first object to claim an event owns it; a later object carrying the same event (a
    Firehose retry, a producer re-send) dead-letters it as a duplicate. Re-claiming from the
    same object writes identical bytes, so a re-run keeps its own claims;
  - ``days/dt=<event day>/<object key>`` — empty markers naming the objects holding a day's
    events (the index :func:`compact_day` lists; no GETs needed);
  - ``objects/<sha(object key)>.json`` — written **last**, with ``lake.put_immutable``.
    Its presence means "done": a duplicate notification, a re-run or the sweep skips the
    object. Everything before it has deterministic keys, so a task killed half-way
    re-processes the object and overwrites the same keys: each event is scored exactly once.

Features. Schedule features come from the batch code itself,
:func:`contrail_spark.transforms.schedule_features`, run once per task (not per object) on the
stack's Spark Connect server (``settings.spark_remote``; without one, a local SparkSession of
the task): there is one definition of ``flight_id``, ``sched_dep_weekday`` and the rest.
Weather and trailing on-time rates cannot be computed from one event; they are looked up in
the **latest published batch partition on or before the event's day** (``features/<set>/``
with ``_SUCCESS``): trailing ``carrier_*``, ``origin_*`` and ``route_*`` columns per key, and
origin weather per ``origin`` + ``time_hour``. On or before, not simply the latest, so a
replay of a past day never sees the future. When that partition is the event's own day the
values are exactly the batch values; when it is older the trailing rates are stale by the
gap (``features_dt`` says by how much) and weather is left null rather than guessed — the
model handles missing values natively. Keys absent from the partition also stay null.

Compaction (:func:`compact_day`) merges a day's events (by event day, through the
``days/`` index) into ``warm/stream/flights/dt=…/part-00000.parquet``: same inputs, same
bytes; the Firehose originals are never touched.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import unquote_plus

from contrail import catalog, lake

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mypy_boto3_s3 import S3Client

    from contrail.settings import Settings

log = logging.getLogger(__name__)

IO_THREADS = 8  # concurrent S3 requests of one micro-batch
FIREHOSE_MAX_BUFFER = timedelta(seconds=900)
# The emulator's fixed account; on AWS the URL comes from the environment (see queue_url).
LOCAL_ACCOUNT = "123456789012"
QUEUE_URL_ENV = "CONTRAIL_STREAM_QUEUE_URL"

INT_FIELDS: tuple[str, ...] = ("year", "month", "day", "sched_dep_time", "sched_arr_time", "flight",
                               "distance", "hour", "minute")
STR_FIELDS: tuple[str, ...] = ("event_id", "event_time", "carrier", "origin", "dest", "time_hour")
OPTIONAL_STR_FIELDS: tuple[str, ...] = ("tailnum",)
_TIME_HOUR = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:00:00Z$")
_CODE = re.compile(r"^[A-Z0-9]{2,4}$")

PREDICTION_STREAM_COLUMNS: tuple[str, ...] = (
    "event_id", "flight_id", "dt", "event_time", "processed_time", "probability", "label",
    "model_name", "model_version", "run_id", "features_dt", "object_key",
)


def _simulate():
    # imported lazily: contrail.simulate pulls in pandas, and DAG files import this module
    from contrail import simulate

    return simulate


def required_fields() -> tuple[str, ...]:
    return ("event_id", "event_time", *_simulate().SCHEDULE_FIELDS)


def warm_columns() -> tuple[str, ...]:
    return ("event_id", "event_time", *_simulate().SCHEDULE_FIELDS, "object_key")


# --------------------------------------------------------------------------- keys (pure)

def queue_url(settings: "Settings", environ: Mapping[str, str] | None = None) -> str:
    """The stream queue's URL without touching the network (DAG files call this at parse time).

    Local: the emulator's ``{emulator_url}/{account}/{queue}``. AWS: ``CONTRAIL_STREAM_QUEUE_URL``
    (printed by ``contrail bootstrap``), since the account id is not known offline.
    """
    environ = os.environ if environ is None else environ
    if settings.is_local:
        return f"{settings.emulator_url}/{LOCAL_ACCOUNT}/{settings.stream_queue}"
    url = environ.get(QUEUE_URL_ENV, "")
    if not url:
        raise ValueError(f"{QUEUE_URL_ENV} must be set on AWS (the URL of queue {settings.stream_queue})")
    return url


# --------------------------------------------------------------------------- notifications (pure)

def keys_from_notification(body: str | Mapping[str, Any], *, prefix: str | None = None) -> list[str]:
    """Object keys named by one S3 notification message body.

    S3 sends an ``s3:TestEvent`` (no records) when the notification is configured, and URL-encodes
    keys (``+`` for spaces). Anything that is not an ObjectCreated record under ``prefix`` is ignored.
    """
    try:
        doc = json.loads(body) if isinstance(body, (str, bytes)) else dict(body)
    except (ValueError, TypeError):
        log.warning("ignoring a stream queue message that is not JSON: %.200r", body)
        return []
    if not isinstance(doc, dict) or doc.get("Event") == "s3:TestEvent":
        return []
    prefix = catalog.STREAM_PREFIX if prefix is None else prefix
    keys = []
    for record in doc.get("Records") or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        key = unquote_plus(record.get("s3", {}).get("object", {}).get("key", ""))
        if key.startswith(prefix):
            keys.append(key)
    return keys


def keys_from_asset_events(extras: Iterable[Mapping[str, Any] | None]) -> list[str]:
    """Object keys from the asset events an SQS ``AssetWatcher`` created, in order, de-duplicated.

    Each event's extra is ``{"from_trigger": True, "payload": {"message_batch": [<SQS message>]}}``.
    """
    keys: list[str] = []
    for extra in extras:
        payload = (extra or {}).get("payload") or {}
        for message in payload.get("message_batch") or []:
            for key in keys_from_notification(message.get("Body", "")):
                if key not in keys:
                    keys.append(key)
    return keys


# --------------------------------------------------------------------------- records (pure)

@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    raw: str


@dataclass(frozen=True)
class ParsedObject:
    """Valid events (in object order) and rejected lines of one Firehose object."""

    events: list[dict[str, Any]]
    rejected: list[Rejected]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_event(record: Any) -> str | None:
    """Why ``record`` cannot be scored, or None. Checks presence, types and internal consistency."""
    if not isinstance(record, dict):
        return f"not a JSON object ({type(record).__name__})"
    missing = [f for f in required_fields() if f not in record or
               (record[f] is None and f not in OPTIONAL_STR_FIELDS)]
    if missing:
        return f"missing field(s): {', '.join(missing)}"
    for name in INT_FIELDS:
        if not _is_int(record[name]):
            return f"wrong type: {name} must be an integer, got {type(record[name]).__name__}"
    for name in STR_FIELDS:
        if not isinstance(record[name], str) or not record[name]:
            return f"wrong type: {name} must be a non-empty string"
    for name in OPTIONAL_STR_FIELDS:
        if record[name] is not None and not isinstance(record[name], str):
            return f"wrong type: {name} must be a string or null"
    if not (1 <= record["month"] <= 12 and 1 <= record["day"] <= 31 and 0 <= record["hour"] <= 23
            and 0 <= record["minute"] <= 59 and record["distance"] > 0 and record["flight"] > 0):
        return "out of range: month, day, hour, minute, distance or flight"
    if not all(_CODE.match(record[name]) for name in ("carrier", "origin", "dest")):
        return "malformed carrier / origin / dest code"
    if not _TIME_HOUR.match(record["time_hour"]):
        return f"malformed time_hour {record['time_hour']!r} (want YYYY-MM-DDTHH:00:00Z)"
    try:
        scheduled = datetime(record["year"], record["month"], record["day"], record["hour"], record["minute"])
        when = datetime.fromisoformat(record["event_time"])
    except ValueError as exc:
        return f"invalid date or event_time: {exc}"
    if when != scheduled:
        return f"inconsistent: event_time {record['event_time']} is not the scheduled departure {scheduled}"
    expected = _simulate().event_id(record["carrier"], record["flight"], record["origin"], scheduled)
    if record["event_id"] != expected:
        return f"inconsistent: event_id {record['event_id']!r} does not match its schedule ({expected!r})"
    return None


def parse_object(body: bytes) -> ParsedObject:
    """Split a Firehose object into valid events and rejected lines (pure).

    Lines are newline-delimited JSON; blank lines are skipped. A repeated ``event_id`` within
    the object is rejected as a duplicate (the first occurrence wins).
    """
    events: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    text = body.decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            rejected.append(Rejected(number, f"malformed JSON: {exc.msg}", line[:2000]))
            continue
        reason = validate_event(record)
        if reason is None and record["event_id"] in seen:
            reason = "duplicate event_id within the object"
        if reason is not None:
            rejected.append(Rejected(number, reason, line[:2000]))
            continue
        seen.add(record["event_id"])
        events.append(record)
    return ParsedObject(events, rejected)


def event_day(event: Mapping[str, Any]) -> str:
    return date(event["year"], event["month"], event["day"]).isoformat()


# --------------------------------------------------------------------------- features

def schedule_frame(events: Sequence[Mapping[str, Any]], spark=None) -> "pd.DataFrame":
    """The batch :func:`~contrail_spark.transforms.schedule_features` over stream events.

    Events carry no outcomes; ``dep_time`` and ``arr_delay`` enter as null (they are only kept
    by the transform for labels and trailing rates, which the stream never computes).
    ``time_hour`` comes back as a UTC-naive timestamp.
    """
    import pandas as pd
    from contrail_spark import transforms

    columns = ["flight_id", "dt", "time_hour", "origin", "dest", "carrier", "route", "distance",
               "sched_dep_hour", "sched_dep_weekday", "month"]
    if not events:
        return pd.DataFrame(columns=columns)
    spark = spark or local_spark()
    # an existing session (tests, notebooks) may have another zone; the join key is UTC
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    names = [f.name for f in transforms.FLIGHTS_SCHEMA.fields]
    rows = [tuple(event.get(name) for name in names) for event in events]
    flights = spark.createDataFrame(rows, schema=transforms.FLIGHTS_SCHEMA)
    out = transforms.schedule_features(flights).select(*columns).toPandas()
    out["time_hour"] = pd.to_datetime(out["time_hour"])
    return out


def local_spark():
    """A small local SparkSession for the schedule transform (one per task process)."""
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[1]")
        .appName("contrail-stream")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "512m")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def stream_spark(remote: str | None):
    """The session the micro-batch runs the batch transforms on.

    ``remote`` (``sc://host:port``): a Spark Connect server that is already warm — the local
    stack runs one — so a run pays a gRPC handshake instead of a JVM start. None: a local
    JVM in this process (:func:`local_spark`), for workers that have Java and no server.
    """
    if remote:
        from pyspark.sql import SparkSession

        _check_reachable(remote)
        return SparkSession.builder.remote(remote).getOrCreate()
    return local_spark()


def _check_reachable(remote: str, timeout: float = 5.0) -> None:
    """Fail in seconds, naming the endpoint, rather than in the client's minutes of retries."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(remote)
    host, port = url.hostname or "", url.port or 15002
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"Spark Connect server {remote} is not reachable ({exc}); start the "
                              "stack (`make up`) or point CONTRAIL_SPARK_REMOTE elsewhere") from exc


def _trailing_columns() -> dict[str, list[str]]:
    from contrail_spark import transforms

    return {key: [c for c in transforms.TRAILING_COLUMNS if c.startswith(f"{key}_")]
            for key in transforms.TRAILING_KEYS}


def _weather_columns() -> list[str]:
    from contrail_spark import transforms

    return list(transforms.WEATHER_VALUE_COLUMNS)


def _utc_naive(series: "pd.Series") -> "pd.Series":
    import pandas as pd

    out = pd.to_datetime(series, utc=True)
    return out.dt.tz_localize(None).astype("datetime64[ns]")


def join_batch_lookups(schedule: "pd.DataFrame", batch: "pd.DataFrame | None",
                       features_dt: str | None) -> "pd.DataFrame":
    """Add weather and trailing columns from one published batch partition (pure).

    Trailing columns come per ``carrier`` / ``origin`` / ``route`` (identical for every flight
    of a key on the partition's day); weather per ``origin`` + ``time_hour``, only when the
    partition is the events' own day (``features_dt == dt``), else null. Numeric features
    are float64, as the model's signature expects.
    """
    import numpy as np
    import pandas as pd

    from contrail.training import NUMERIC_FEATURES

    out = schedule.copy()
    out["time_hour"] = _utc_naive(out["time_hour"])
    if batch is not None and len(batch):
        for key, cols in _trailing_columns().items():
            per_key = batch.loc[:, [key, *cols]].drop_duplicates(subset=[key], keep="first")
            out = out.merge(per_key, on=key, how="left")
        weather = batch.loc[:, ["origin", "time_hour", *_weather_columns()]].copy()
        weather["time_hour"] = _utc_naive(weather["time_hour"])
        weather = weather.drop_duplicates(subset=["origin", "time_hour"], keep="first")
        out = out.merge(weather, on=["origin", "time_hour"], how="left")
        stale = (out["dt"] != features_dt).to_numpy()
        out.loc[stale, _weather_columns()] = np.nan
    for col in NUMERIC_FEATURES:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64") if col in out else np.nan
    out["features_dt"] = features_dt
    return out


def partition_on_or_before(published: Iterable[date], day: date) -> date | None:
    """The latest published feature day not after ``day`` (pure)."""
    candidates = [d for d in published if d <= day]
    return max(candidates) if candidates else None


class BatchFeatures:
    """Reads (once per task) the published batch partitions the look-ups come from."""

    def __init__(self, s3: "S3Client", bucket: str, feature_set: str):
        self.s3, self.bucket, self.feature_set = s3, bucket, feature_set
        self._days: list[date] | None = None
        self._frames: dict[date, "pd.DataFrame"] = {}

    def for_day(self, day: str) -> tuple[str | None, "pd.DataFrame | None"]:
        if self._days is None:
            self._days = catalog.published_days(self.s3, self.bucket, catalog.features_zone(self.feature_set))
        chosen = partition_on_or_before(self._days, date.fromisoformat(day))
        if chosen is None:
            return None, None
        if chosen not in self._frames:
            part = catalog.published_one(self.s3, self.bucket, catalog.features_partition(self.feature_set, chosen))
            if part is None:  # withdrawn since the listing: look again next time
                self._days = None
                return None, None
            self._frames[chosen] = catalog.read_published(self.s3, self.bucket, part)
        return chosen.isoformat(), self._frames[chosen]


def stream_features(events: Sequence[Mapping[str, Any]], batch: BatchFeatures, spark=None) -> "pd.DataFrame":
    """Feature rows (``flights_v1`` columns the model needs, plus ``event_id``) for valid events."""
    import pandas as pd

    schedule = schedule_frame(events, spark)
    schedule["event_id"] = [e["event_id"] for e in events]  # same order: one row per event
    schedule["event_time"] = [e["event_time"] for e in events]
    schedule["object_key"] = [e.get("_object_key") for e in events]
    parts = []
    for day, rows in schedule.groupby("dt", sort=True):
        features_dt, frame = batch.for_day(day)
        parts.append(join_batch_lookups(rows, frame, features_dt))
    return pd.concat(parts, ignore_index=True) if parts else join_batch_lookups(schedule, None, None)


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


def _parquet_bytes(frame: "pd.DataFrame") -> bytes:
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
            s3.put_object(Bucket=bucket, Key=key, Body=_parquet_bytes(frame.reset_index(drop=True)))
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


def process_keys(s3: "S3Client", bucket: str, keys: Iterable[str], *, scorer: Scorer, batch: BatchFeatures,
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
            features = stream_features(events, batch, spark)
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
    body = _parquet_bytes(frame)
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


# --------------------------------------------------------------------------- Airflow edge

SWEEP_GRACE = timedelta(minutes=2)


def _champion_scorer() -> Scorer | None:
    from contrail import registry
    from contrail.connections import mlflow_client as _mlflow_client, settings

    cfg = settings()
    client = _mlflow_client()
    champion = registry.current_champion(client, cfg.model_name)
    if champion is None:
        return None
    version = client.get_model_version(cfg.model_name, str(champion.version))
    threshold = client.get_run(version.run_id).data.params.get("threshold", "0.5")
    return Scorer(model=registry.load_model(champion.model_uri), model_name=cfg.model_name,
                  model_version=str(champion.version), run_id=version.run_id, threshold=float(threshold))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _wall_clock() -> str:
    # processed_time measures freshness, so it is wall-clock on purpose (like an audit stamp)
    return _utcnow().isoformat(timespec="milliseconds")


def process_from_context(context: dict, *, mode: str) -> dict[str, Any]:
    """The task both stream DAGs run. ``mode="event"``: the objects named by the triggering SQS
    asset events; ``mode="sweep"``: every object not yet in the ledger (older than a grace period)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail import assets
    from contrail.connections import s3, settings

    started = _utcnow()
    cfg, client = settings(), s3()
    if mode == "event":
        extras = [ev.extra for events in context["triggering_asset_events"].values() for ev in events]
        keys = keys_from_asset_events(extras)
    elif mode == "sweep":
        end = context.get("data_interval_end") or context["dag_run"].run_after
        keys = unledgered(client, cfg.bucket, modified_before=end - SWEEP_GRACE)
    else:
        raise ValueError(f"mode must be 'event' or 'sweep', got {mode!r}")
    log.info("%s: %d object(s) to consider", mode, len(keys))
    if not keys:
        raise AirflowSkipException("no stream object to process")
    if mode == "event" and not unprocessed(client, cfg.bucket, keys):
        # typical after a draining run: its objects' notifications start this one
        raise AirflowSkipException(f"all {len(keys)} object(s) already processed")
    # the session comes up (a Connect handshake, or a JVM start without a server) while
    # MLflow is imported and the champion loads
    with ThreadPoolExecutor(1, thread_name_prefix="contrail-spark-start") as pool:
        session = pool.submit(stream_spark, cfg.spark_remote)
        try:
            scorer = _champion_scorer()
            if scorer is None:
                # nothing is ledgered: the sweep scores these objects once a champion exists
                raise AirflowSkipException(f"no champion registered for {cfg.model_name} yet")
            batch = BatchFeatures(client, cfg.bucket, cfg.feature_set)

            def process(some: list[str]) -> dict[str, Any]:
                return process_keys(client, cfg.bucket, some, scorer=scorer, batch=batch,
                                    processed_time=_wall_clock, spark=session.result())

            summary = process(keys)
            if mode == "event":
                drained = drain(client, cfg.bucket, handled=set(keys), started=started,
                                policy=Drain(idle_s=cfg.stream_drain_idle_s), process=process,
                                clock=_utcnow, sleep=time.sleep)
                if drained is not None:
                    log.info("drained %d more object(s) while running", drained["objects"])
                    summary = merge_summaries(summary, drained)
        finally:
            if session.exception() is None:
                session.result().stop()  # a Connect session is released on the server
    summary["mode"] = mode
    context["outlet_events"][assets.predictions()].extra = {"model_name": cfg.model_name, "stream": summary}
    return summary


def compact_from_context(context: dict) -> dict[str, Any]:
    from contrail.connections import s3, settings

    day = context["data_interval_start"].date()
    return compact_day(s3(), settings().bucket, day)
