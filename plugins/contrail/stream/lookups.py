"""Features for stream events: schedule features from the batch transform (on Spark Connect or a
local session), trailing rates and weather from published batch partitions.

**What the stream may know at event time.** A flight event of day D arrives while D is flying;
D's batch partition is built only after D's drop lands, the next day. So the stream uses only
partitions *strictly before* D (:func:`history_days`), whatever has been built since:
  * trailing rates (``<key>_ontime_<N>d``, ``<key>_flights_<N>d``) are recomputed from the
    flights of days D-N .. D-1 in those partitions, with the batch job's definition (every
    scheduled flight counts; on-time = arrived under 15 min late) — the same numbers batch
    gives D when those days are all published;
  * weather is the latest landed hour before D at the origin (the last hour of D-1 the
    partitions carry), not the scheduled hour's observation, which lands only with D's drop.
Replayed after the batch ran, this gives the same features as in real time: the event's own
partition is never read.
"""

from __future__ import annotations

import logging
import os
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence

from contrail import catalog

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mypy_boto3_s3 import S3Client


log = logging.getLogger(__name__)

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

        check_reachable(remote)
        return SparkSession.builder.remote(remote).getOrCreate()
    return local_spark()


def check_reachable(remote: str, timeout: float = 5.0) -> None:
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


def trailing_from_history(history: "pd.DataFrame", day: date) -> dict[str, "pd.DataFrame"]:
    """Per trailing key, one row per key value with the trailing columns of ``day``, from the
    feature rows of earlier days (``dt``, keys, ``label``): the batch job's
    ``rangeBetween(-N, -1)`` windows (pure)."""
    import numpy as np
    import pandas as pd

    from contrail_spark import transforms

    days = pd.to_datetime(history["dt"]).dt.date
    ago = np.array([(day - d).days for d in days], dtype=np.int64)
    arrived = history["label"].notna().to_numpy()
    ontime = arrived & (pd.to_numeric(history["label"], errors="coerce").fillna(1).to_numpy() == 0)
    out = {}
    for key in transforms.TRAILING_KEYS:
        frame = None
        for n in transforms.TRAILING_WINDOWS_DAYS:
            inside = (ago >= 1) & (ago <= n)
            per = pd.DataFrame({key: history[key].to_numpy()[inside], "flights": 1,
                                "arrived": arrived[inside].astype(np.int64),
                                "ontime": ontime[inside].astype(np.int64)}).groupby(key).sum()
            cols = pd.DataFrame({
                f"{key}_ontime_{n}d": (per["ontime"] / per["arrived"].where(per["arrived"] > 0)).astype("float64"),
                f"{key}_flights_{n}d": per["flights"].astype("float64"),
            })
            frame = cols if frame is None else frame.join(cols, how="outer")
        frame = frame.reset_index()
        # a key seen in the 28-day window but not the 7-day one flew 0 flights in the last 7 days
        for n in transforms.TRAILING_WINDOWS_DAYS:
            frame[f"{key}_flights_{n}d"] = frame[f"{key}_flights_{n}d"].fillna(0.0)
        out[key] = frame
    return out


def latest_weather(history: "pd.DataFrame", day: date) -> "pd.DataFrame":
    """Per origin, the weather of the latest hour before ``day`` the partitions carry (pure)."""
    import pandas as pd

    cols = _weather_columns()
    rows = history.loc[pd.to_datetime(history["dt"]).dt.date < day, ["origin", "time_hour", *cols]].copy()
    rows["time_hour"] = _utc_naive(rows["time_hour"])
    rows = rows.loc[rows[cols].notna().any(axis=1)]
    latest = rows.sort_values(["origin", "time_hour"], kind="stable").drop_duplicates("origin", keep="last")
    return latest.rename(columns={"time_hour": "weather_hour"}).reset_index(drop=True)


def join_lookups(schedule: "pd.DataFrame", trailing: Mapping[str, "pd.DataFrame"] | None,
                 weather: "pd.DataFrame | None", features_dt: str | None) -> "pd.DataFrame":
    """Add the looked-up columns to schedule rows (pure): ``trailing`` is, per trailing key, one
    row per key value with its trailing columns; ``weather`` one row per ``origin`` with the
    weather columns; ``features_dt`` is recorded on each row. Keys absent stay null. Numeric
    features are float64, as the model's signature expects. Both look-up sources (published
    partitions, the online store) end here, so they join the same way.
    """
    import numpy as np
    import pandas as pd

    from contrail.training import NUMERIC_FEATURES

    out = schedule.copy()
    out["time_hour"] = _utc_naive(out["time_hour"])
    for key, per_key in (trailing or {}).items():
        out = out.merge(per_key, on=key, how="left")
    if weather is not None:
        out = out.merge(weather, on="origin", how="left")
    for col in NUMERIC_FEATURES:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64") if col in out else np.nan
    out["features_dt"] = features_dt
    return out


def join_batch_lookups(schedule: "pd.DataFrame", history: "pd.DataFrame | None",
                       features_dt: str | None, day: date | None = None) -> "pd.DataFrame":
    """Add trailing and weather columns known before the events' day ``day`` (pure).

    ``history``: published feature rows of days before ``day`` (see the module doc);
    ``features_dt``: the latest of those days, recorded on each row.
    """
    if history is not None and len(history) and day is not None:
        return join_lookups(schedule, trailing_from_history(history, day),
                            latest_weather(history, day).drop(columns="weather_hour"), features_dt)
    return join_lookups(schedule, None, None, features_dt)


def history_days(published: Iterable[date], day: date, lookback_days: int) -> list[date]:
    """Published feature days the stream may read for events of ``day``: strictly before it,
    at most ``lookback_days`` back (pure)."""
    return sorted(d for d in published if day - timedelta(days=lookback_days) <= d < day)


class FeatureLookups(Protocol):
    """Where a micro-batch's trailing rates and weather come from: the online store
    (:class:`contrail.online_store.OnlineFeatures`, the hot path) or the published partitions
    (:class:`BatchFeatures`, the reference it must equal)."""

    def join(self, schedule: "pd.DataFrame") -> "pd.DataFrame":
        """``schedule`` rows (any event days) with the looked-up columns and ``features_dt``."""
        ...


class BatchFeatures:
    """Reads (once per task) the published batch partitions the look-ups come from: for events
    of day D, those of D-28 .. D-1 (never D itself, which in real time does not exist yet).
    Reads whole Parquet partitions from S3: the reference for the online store, not the hot path."""

    def __init__(self, s3: "S3Client", bucket: str, feature_set: str):
        self.s3, self.bucket, self.feature_set = s3, bucket, feature_set
        self._days: list[date] | None = None
        self._frames: dict[date, "pd.DataFrame"] = {}

    def _frame(self, dt: date) -> "pd.DataFrame | None":
        if dt not in self._frames:
            part = catalog.published_one(self.s3, self.bucket, catalog.features_partition(self.feature_set, dt))
            if part is None:  # withdrawn since the listing: look again next time
                self._days = None
                return None
            self._frames[dt] = catalog.read_published(self.s3, self.bucket, part)
        return self._frames[dt]

    def for_day(self, day: str) -> tuple[str | None, "pd.DataFrame | None"]:
        """(latest day read, the feature rows of the days before ``day``), or (None, None)."""
        import pandas as pd
        from contrail_spark import transforms

        if self._days is None:
            self._days = catalog.published_days(self.s3, self.bucket, catalog.features_zone(self.feature_set))
        chosen = history_days(self._days, date.fromisoformat(day), transforms.LOOKBACK_DAYS)
        frames = [f for f in (self._frame(d) for d in chosen) if f is not None]
        if not frames:
            return None, None
        return chosen[-1].isoformat(), pd.concat(frames, ignore_index=True)

    def join(self, schedule: "pd.DataFrame") -> "pd.DataFrame":
        import pandas as pd

        parts = []
        for day, rows in schedule.groupby("dt", sort=True):
            features_dt, history = self.for_day(day)
            parts.append(join_batch_lookups(rows, history, features_dt, date.fromisoformat(day)))
        return pd.concat(parts, ignore_index=True) if parts else join_batch_lookups(schedule, None, None)


def stream_features(events: Sequence[Mapping[str, Any]], lookups: FeatureLookups, spark=None) -> "pd.DataFrame":
    """Feature rows (``flights_v1`` columns the model needs, plus ``event_id``) for valid events."""
    schedule = schedule_frame(events, spark)
    schedule["event_id"] = [e["event_id"] for e in events]  # same order: one row per event
    schedule["event_time"] = [e["event_time"] for e in events]
    schedule["object_key"] = [e.get("_object_key") for e in events]
    return lookups.join(schedule)
