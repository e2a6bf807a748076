"""Features for stream events: schedule features from the batch transform (on Spark Connect or a
local session), trailing rates and weather looked up in published batch partitions.
"""

from __future__ import annotations

import logging
import os
from datetime import date
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

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
