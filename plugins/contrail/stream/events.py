"""The stream's event contract: what one Firehose record must be (fields, types, the
schedule it names), how notifications name objects, and how an object parses into events and
rejects. Pure; the simulator produces records by it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable, Mapping
from urllib.parse import unquote_plus

from contrail import catalog

if TYPE_CHECKING:  # pragma: no cover
    pass

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


# Fields of a schedule event, in order; everything here is known before departure.
SCHEDULE_FIELDS: tuple[str, ...] = (
    "year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum",
    "origin", "dest", "distance", "hour", "minute", "time_hour",
)


def event_id(carrier: str, flight: int, origin: str, scheduled: datetime) -> str:
    """Stable id: ``<carrier>-<flight>-<origin>-<scheduled departure, local, to the minute>``."""
    return f"{carrier}-{flight}-{origin}-{scheduled.strftime('%Y-%m-%dT%H:%M')}"


def required_fields() -> tuple[str, ...]:
    return ("event_id", "event_time", *SCHEDULE_FIELDS)


def warm_columns() -> tuple[str, ...]:
    return ("event_id", "event_time", *SCHEDULE_FIELDS, "object_key")


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
    expected = event_id(record["carrier"], record["flight"], record["origin"], scheduled)
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
