"""The hot tier: an online feature store in DynamoDB for the micro-batch path.

What it holds. One item per entity (``carrier#UA``, ``origin#EWR``, ``route#EWR-IAH``) and
**as-of day** D: the trailing rates and volumes (``<key>_ontime_<N>d``, ``<key>_flights_<N>d``)
known at the start of D, and on origin items the latest landed weather (``weather_hour`` and the
weather columns). The values are exactly what the S3 look-ups compute for events of day D
(:func:`contrail.stream.lookups.trailing_from_history`, :func:`~contrail.stream.lookups.latest_weather`
over the published partitions of D-28 .. D-1), so scoring from the store gives the same
predictions. Point in time: an as-of-D item is made only from partitions strictly before D, so
the latest weather hour it carries is at or before any scheduled hour of D (D's observations land
with D's drop, the next day), and writing a later as-of day never touches an earlier one.

Versions. Each as-of day has a **marker** item (entity ``_asof``), written last, naming the
window it was made from (``dt@build`` of each partition) and its digest, the ``token``. Every
entity item carries the token of the window that wrote it; a reader trusts an item only if its
token is its marker's. So a rebuild of day d rewrites as-of d+1 .. d+28 (the days whose windows
hold d) and nothing else; an entity that left a window is simply not trusted any more; a re-run
with the same builds finds equal tokens and writes nothing. ``expires_at`` (the table's TTL
attribute) is the as-of day plus ``settings.online_ttl_days``.

Reads. :class:`OnlineFeatures` answers a micro-batch with one BatchGetItem (chunked to its
100-key limit): the markers of the events' days and every entity they name. No S3 read.
When the batch is behind (no marker for D yet), it falls back to the newest as-of day before D
(one Query, one more BatchGetItem): the rates are then those as of that day, ``features_dt``
says which.

The table's name is ``settings.online_table``; its key layout is below (the lake catalog's keys
are S3 keys; this table is not in the lake).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from contrail import catalog

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

WRITE_BATCH = 25  # BatchWriteItem's limit
KEY_BATCH = 100  # BatchGetItem's limit
Item = dict[str, dict[str, Any]]  # DynamoDB's low-level attribute form

# The table's key layout (its name comes from settings: ``online_table``).
ONLINE_ENTITY = "entity"  # partition key: "<key name>#<value>", e.g. "route#EWR-IAH"
ONLINE_ASOF = "asof"  # sort key: the day the values are known at the start of (YYYY-MM-DD)
ONLINE_EXPIRES = "expires_at"  # TTL attribute (epoch seconds)
ONLINE_MARKER = "_asof"  # entity of the marker item written last for each as-of day


def online_entity(key: str, value: str) -> str:
    return f"{key}#{value}"


def online_key(entity: str, asof: date | str) -> dict[str, dict[str, str]]:
    """The DynamoDB key (low-level attribute form) of one online item."""
    return {ONLINE_ENTITY: {"S": entity}, ONLINE_ASOF: {"S": catalog.dt_str(asof)}}


# --------------------------------------------------------------------------- table (I/O)

def table_definition(table: str) -> dict[str, Any]:
    """CreateTable arguments: entity + as-of day, on demand (pure; deploy/contrail.yaml says the same)."""
    return {
        "TableName": table,
        "AttributeDefinitions": [{"AttributeName": ONLINE_ENTITY, "AttributeType": "S"},
                                 {"AttributeName": ONLINE_ASOF, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": ONLINE_ENTITY, "KeyType": "HASH"},
                      {"AttributeName": ONLINE_ASOF, "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


def ensure_table(dynamodb, table: str) -> None:
    """Create the table (and its TTL) if absent; idempotent."""
    try:
        dynamodb.describe_table(TableName=table)
    except dynamodb.exceptions.ResourceNotFoundException:
        dynamodb.create_table(**table_definition(table))
        dynamodb.get_waiter("table_exists").wait(TableName=table)
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": ONLINE_EXPIRES})


def check_table(dynamodb, table: str) -> Iterable[str]:
    """What differs from :func:`table_definition` (``bootstrap --check``)."""
    description = dynamodb.describe_table(TableName=table)["Table"]
    wanted = table_definition(table)["KeySchema"]
    def keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
        return sorted((k["AttributeName"], k["KeyType"]) for k in schema)

    if keys(description["KeySchema"]) != keys(wanted):
        yield f"table {table}: key schema {description['KeySchema']} is not {wanted}"
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    enabled = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
    if not enabled or ttl.get("AttributeName") != ONLINE_EXPIRES:
        yield f"table {table}: TTL is not enabled on {ONLINE_EXPIRES}"


# --------------------------------------------------------------------------- items (pure)

@dataclass(frozen=True)
class AsOf:
    """One as-of day's marker: the window (``dt@build``) its values were made from."""

    day: date
    window: tuple[str, ...]

    @property
    def features_dt(self) -> str:
        return self.window[-1].split("@", 1)[0]

    @property
    def token(self) -> str:
        return hashlib.sha256(json.dumps(list(self.window)).encode()).hexdigest()[:16]


def _number(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    number = float(value)
    # repr round-trips a float exactly: the store gives back the S3 path's very numbers
    return None if math.isnan(number) else {"N": repr(number)}


def expires_at(day: date, ttl_days: int) -> int:
    end = datetime.combine(day + timedelta(days=ttl_days), datetime.min.time(), tzinfo=timezone.utc)
    return int(end.timestamp())


def asof_items(trailing: Mapping[str, "pd.DataFrame"], weather: "pd.DataFrame", asof: AsOf,
               ttl_days: int) -> tuple[list[Item], Item]:
    """(entity items, marker item) of one as-of day from the look-up frames (pure).

    ``trailing``: per key, rows of key value + trailing columns; ``weather``: rows of ``origin``,
    ``weather_hour`` and the weather columns (:func:`~contrail.stream.lookups.latest_weather`).
    Null values are left out (a missing attribute reads back as null).
    """
    day = catalog.dt_str(asof.day)
    common = {ONLINE_ASOF: {"S": day}, "token": {"S": asof.token},
              "features_dt": {"S": asof.features_dt},
              ONLINE_EXPIRES: {"N": str(expires_at(asof.day, ttl_days))}}
    items: dict[str, Item] = {}

    def add(entity: str, row: Mapping[str, Any], columns: Sequence[str]) -> None:
        item = items.setdefault(entity, {ONLINE_ENTITY: {"S": entity}, **common})
        for col in columns:
            value = _number(row[col])
            if value is not None:
                item[col] = value

    for key, frame in trailing.items():
        columns = [c for c in frame.columns if c != key]
        for row in frame.to_dict("records"):
            add(online_entity(key, str(row[key])), row, columns)
    weather_columns = [c for c in weather.columns if c not in ("origin", "weather_hour")]
    for row in weather.to_dict("records"):
        entity = online_entity("origin", str(row["origin"]))
        add(entity, row, weather_columns)
        items[entity]["weather_hour"] = {"S": row["weather_hour"].isoformat()}
    marker = {ONLINE_ENTITY: {"S": ONLINE_MARKER}, **common,
              "window": {"L": [{"S": w} for w in asof.window]}}
    return list(items.values()), marker


def frames_from_items(items: Iterable[Item], trailing_columns: Mapping[str, Sequence[str]],
                      weather_columns: Sequence[str]) -> tuple[dict[str, "pd.DataFrame"], "pd.DataFrame"]:
    """The look-up frames :func:`~contrail.stream.lookups.join_lookups` takes, from the items of
    one as-of day (pure; the inverse of :func:`asof_items` without ``weather_hour``)."""
    import numpy as np
    import pandas as pd

    rows: dict[str, list[dict[str, Any]]] = {key: [] for key in trailing_columns}
    weather: list[dict[str, Any]] = []
    for item in items:
        key, _, value = item[ONLINE_ENTITY]["S"].partition("#")
        if key not in rows:
            continue

        def number(col: str) -> float:
            return float(item[col]["N"]) if col in item else np.nan

        rows[key].append({key: value, **{c: number(c) for c in trailing_columns[key]}})
        if key == "origin" and "weather_hour" in item:
            weather.append({"origin": value, **{c: number(c) for c in weather_columns}})
    trailing = {key: pd.DataFrame(found, columns=[key, *trailing_columns[key]]).astype(
        {c: "float64" for c in trailing_columns[key]}) for key, found in rows.items()}
    return trailing, pd.DataFrame(weather, columns=["origin", *weather_columns]).astype(
        {c: "float64" for c in weather_columns})


def affected_asof_days(published: Iterable[date], changed: Iterable[date], lookback_days: int) -> list[date]:
    """As-of days whose window holds a changed partition: d+1 .. d+lookback for each changed d,
    up to the day after the newest published one (pure). A forward day gives one as-of day; a
    rebuilt old day the ``lookback`` days that read it."""
    published = sorted(published)
    if not published:
        return []
    last = published[-1] + timedelta(days=1)
    return sorted({d + timedelta(days=n) for d in changed for n in range(1, lookback_days + 1)
                   if d + timedelta(days=n) <= last})


# --------------------------------------------------------------------------- write (the feature stage)

def _write_items(dynamodb, table: str, items: Sequence[Item]) -> int:
    calls = 0
    for start in range(0, len(items), WRITE_BATCH):
        requests = [{"PutRequest": {"Item": item}} for item in items[start:start + WRITE_BATCH]]
        for attempt in range(8):
            calls += 1
            left = dynamodb.batch_write_item(RequestItems={table: requests}).get("UnprocessedItems", {})
            requests = left.get(table, [])
            if not requests:
                break
            time.sleep(0.05 * 2 ** attempt)
        else:
            raise RuntimeError(f"DynamoDB left {len(requests)} item(s) of {table} unwritten")
    return calls


def _marker(dynamodb, table: str, day: date) -> Item | None:
    return dynamodb.get_item(TableName=table, Key=online_key(ONLINE_MARKER, day),
                             ConsistentRead=True).get("Item")


def refresh(s3, dynamodb, bucket: str, *, table: str, feature_set: str, changed: Iterable[date | str],
            ttl_days: int) -> dict[str, int]:
    """Bring the as-of days that read the ``changed`` partitions up to date with what is published.

    Per as-of day: skip it if its marker already names the same window; else write its entity
    items, then its marker (last). Reads each published partition at most once. Returns counts.
    """
    import pandas as pd

    from contrail.stream.lookups import history_days, latest_weather, trailing_from_history
    from contrail_spark import transforms

    parts = catalog.published(s3, bucket, catalog.features_zone(feature_set))
    changed_days = [date.fromisoformat(catalog.dt_str(d)) for d in changed]
    frames: dict[date, pd.DataFrame] = {}
    summary = {"asof_days": 0, "unchanged": 0, "items": 0}
    for day in affected_asof_days(parts, changed_days, transforms.LOOKBACK_DAYS):
        window = history_days(parts, day, transforms.LOOKBACK_DAYS)
        if not window:
            continue
        asof = AsOf(day, tuple(f"{d.isoformat()}@{parts[d].manifest.get('build')}" for d in window))
        marker = _marker(dynamodb, table, day)
        if marker is not None and marker.get("token", {}).get("S") == asof.token:
            summary["unchanged"] += 1
            continue
        for d in window:
            if d not in frames:
                frames[d] = catalog.read_published(s3, bucket, parts[d])
        history = pd.concat([frames[d] for d in window], ignore_index=True)
        items, marker_item = asof_items(trailing_from_history(history, day), latest_weather(history, day),
                                        asof, ttl_days)
        _write_items(dynamodb, table, items)
        dynamodb.put_item(TableName=table, Item=marker_item)  # last: the day is now readable
        summary["asof_days"] += 1
        summary["items"] += len(items)
    log.info("online store %s: %s", table, summary)
    return summary


# --------------------------------------------------------------------------- read (the hot path)

class OnlineFeatures:
    """The micro-batch path's look-ups (:class:`~contrail.stream.lookups.FeatureLookups`) from
    the online store: one BatchGetItem per micro-batch. ``calls`` counts DynamoDB requests."""

    def __init__(self, dynamodb, table: str):
        self.dynamodb, self.table = dynamodb, table
        self.calls = 0

    def _get(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        found: dict[tuple[str, str], Item] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), KEY_BATCH):
            chunk = unique[start:start + KEY_BATCH]
            request = {self.table: {"Keys": [online_key(e, d) for e, d in chunk]}}
            for attempt in range(8):
                self.calls += 1
                answer = self.dynamodb.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[(item[ONLINE_ENTITY]["S"], item[ONLINE_ASOF]["S"])] = item
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2 ** attempt)
            else:
                raise RuntimeError(f"DynamoDB left keys of {self.table} unread")
        return found

    def _latest_before(self, day: str) -> str | None:
        self.calls += 1
        answer = self.dynamodb.query(
            TableName=self.table, KeyConditionExpression="#e = :m AND #a < :d",
            ExpressionAttributeNames={"#e": ONLINE_ENTITY, "#a": ONLINE_ASOF},
            ExpressionAttributeValues={":m": {"S": ONLINE_MARKER}, ":d": {"S": day}},
            ScanIndexForward=False, Limit=1)
        items = answer.get("Items", [])
        return items[0][ONLINE_ASOF]["S"] if items else None

    @staticmethod
    def _entities(rows: "pd.DataFrame") -> list[str]:
        from contrail_spark import transforms

        return [online_entity(key, str(v)) for key in transforms.TRAILING_KEYS
                for v in sorted(rows[key].dropna().unique())]

    def join(self, schedule: "pd.DataFrame") -> "pd.DataFrame":
        import pandas as pd

        from contrail.stream.lookups import _trailing_columns, _weather_columns, join_lookups

        by_day = {day: rows for day, rows in schedule.groupby("dt", sort=True)}
        wanted = [(e, day) for day, rows in by_day.items()
                  for e in [ONLINE_MARKER, *self._entities(rows)]]
        found = self._get(wanted)
        asof = {day: day for day in by_day if (ONLINE_MARKER, day) in found}
        behind = {day: self._latest_before(day) for day in by_day if day not in asof}
        behind = {day: older for day, older in behind.items() if older is not None}
        if behind:
            found.update(self._get([(e, older) for day, older in behind.items()
                                    for e in [ONLINE_MARKER, *self._entities(by_day[day])]]))
            asof.update(behind)
        parts = []
        for day, rows in by_day.items():
            if day not in asof:
                parts.append(join_lookups(rows, None, None, None))
                continue
            marker = found[(ONLINE_MARKER, asof[day])]
            token = marker["token"]["S"]
            items = [found[(e, asof[day])] for e in self._entities(rows)
                     if (e, asof[day]) in found and found[(e, asof[day])].get("token", {}).get("S") == token]
            trailing, weather = frames_from_items(items, _trailing_columns(), _weather_columns())
            parts.append(join_lookups(rows, trailing, weather, marker["features_dt"]["S"]))
        return pd.concat(parts, ignore_index=True) if parts else join_lookups(schedule, None, None, None)
