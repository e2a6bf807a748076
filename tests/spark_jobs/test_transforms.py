"""The ``flights_v1`` transforms on tiny inline frames; every expected frame is written by hand."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)
from pyspark.testing import assertDataFrameEqual

from contrail_spark import transforms as T

pytestmark = pytest.mark.spark

NEW_YORK = ZoneInfo("America/New_York")


def flight(
    d: date,
    *,
    carrier: str = "UA",
    number: int = 1,
    origin: str = "EWR",
    dest: str = "IAH",
    hour: int = 9,
    minute: int = 0,
    dep_time: int | None = 900,
    arr_delay: int | None = 0,
    distance: int = 1400,
) -> tuple:
    """One landed flights row (FLIGHTS_SCHEMA order); time_hour is the UTC scheduled hour."""
    local = datetime(d.year, d.month, d.day, hour, tzinfo=NEW_YORK)
    time_hour = local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (d.year, d.month, d.day, dep_time, hour * 100 + minute, None, None, None, arr_delay,
            carrier, number, "N1", origin, dest, None, distance, hour, minute, time_hour)


def weather_row(origin: str, time_hour: str, temp: float | None = 40.0, visib: float = 10.0) -> tuple:
    return (origin, 2013, 1, 1, 0, temp, 20.0, 50.0, 270, 10.0, None, 0.0, 1012.0, visib, time_hour)


def flights_df(spark, rows):
    return spark.createDataFrame(rows, T.FLIGHTS_SCHEMA)


def weather_df(spark, rows):
    return spark.createDataFrame(rows, T.WEATHER_SCHEMA)


def utc(*args: int) -> datetime:
    # the session runs in UTC (conftest), so naive datetimes are UTC wall-clock
    return datetime(*args)


def test_schedule_features_identity_and_calendar(spark):
    # 2013-01-07 is a Monday, 2013-01-13 a Sunday; 2013-07-01 08:05 EDT is 12:00 UTC's hour
    rows = [
        flight(date(2013, 1, 7), carrier="UA", number=1545, origin="EWR", dest="IAH", hour=5, minute=15),
        flight(date(2013, 1, 13), carrier="B6", number=7, origin="JFK", dest="BOS", hour=23, minute=59,
               distance=187),
        flight(date(2013, 7, 1), carrier="AA", number=33, origin="LGA", dest="ORD", hour=8, minute=5,
               distance=733),
    ]
    got = T.schedule_features(flights_df(spark, rows)).select(
        "flight_id", "dt", "day_number", "time_hour", "route", "distance",
        "sched_dep_hour", "sched_dep_weekday", "month",
    )
    schema = StructType([
        StructField("flight_id", StringType()), StructField("dt", StringType()),
        StructField("day_number", IntegerType()), StructField("time_hour", TimestampType()),
        StructField("route", StringType()), StructField("distance", IntegerType()),
        StructField("sched_dep_hour", IntegerType()), StructField("sched_dep_weekday", IntegerType()),
        StructField("month", IntegerType()),
    ])
    expected = spark.createDataFrame([
        ("UA-1545-EWR-201301070515", "2013-01-07", 15712, utc(2013, 1, 7, 10), "EWR-IAH", 1400, 5, 1, 1),
        ("B6-7-JFK-201301132359", "2013-01-13", 15718, utc(2013, 1, 14, 4), "JFK-BOS", 187, 23, 7, 1),
        ("AA-33-LGA-201307010805", "2013-07-01", 15887, utc(2013, 7, 1, 12), "LGA-ORD", 733, 8, 1, 7),
    ], schema)
    assertDataFrameEqual(got, expected, checkRowOrder=False)


@pytest.mark.parametrize(
    ("dep_time", "arr_delay", "label", "status"),
    [
        (900, -3, 0, "arrived"),
        (900, 14, 0, "arrived"),
        (900, 15, 1, "arrived"),  # 15 minutes late is late
        (900, 120, 1, "arrived"),
        (None, None, None, "cancelled"),
        (900, None, None, "diverted"),
    ],
)
def test_label_cases(spark, dep_time, arr_delay, label, status):
    frame = spark.createDataFrame(
        [(dep_time, arr_delay)],
        StructType([StructField("dep_time", IntegerType()), StructField("arr_delay", IntegerType())]),
    )
    got = T.label_flights(frame).select("label", "label_status")
    expected = spark.createDataFrame(
        [(label, status)],
        StructType([StructField("label", IntegerType()), StructField("label_status", StringType(), False)]),
    )
    assertDataFrameEqual(got, expected)


def test_origin_weather_parses_time_and_drops_duplicate_hours(spark):
    rows = [
        weather_row("EWR", "2013-01-01T10:00:00Z", temp=39.0),
        weather_row("EWR", "2013-01-01T10:00:00Z", temp=41.0),  # duplicate hour: lowest temp wins
        weather_row("JFK", "2013-01-01T10:00:00Z", temp=None),
    ]
    got = T.origin_weather(weather_df(spark, rows)).select("origin", "time_hour", "temp", "visib")
    expected = spark.createDataFrame(
        [("EWR", utc(2013, 1, 1, 10), 39.0, 10.0), ("JFK", utc(2013, 1, 1, 10), None, 10.0)],
        "origin string, time_hour timestamp, temp double, visib double",
    )
    assertDataFrameEqual(got, expected, checkRowOrder=False)


def test_daily_performance_counts_scheduled_arrived_and_on_time(spark):
    day = date(2013, 3, 1)
    rows = [
        flight(day, number=1, arr_delay=0),
        flight(day, number=2, arr_delay=14),
        flight(day, number=3, arr_delay=15),
        flight(day, number=4, dep_time=None, arr_delay=None),  # cancelled
        flight(day, number=5, arr_delay=None),  # diverted
        flight(day, number=6, carrier="AA", arr_delay=30),
    ]
    got = T.daily_performance(T.schedule_features(flights_df(spark, rows)), "carrier")
    expected = spark.createDataFrame(
        [("UA", 15765, 5, 3, 2), ("AA", 15765, 1, 1, 0)],
        StructType([
            StructField("carrier", StringType()), StructField("day_number", IntegerType()),
            StructField("flights", LongType(), False), StructField("arrived", LongType()),
            StructField("ontime", LongType()),
        ]),
    )
    assertDataFrameEqual(got, expected, checkRowOrder=False)


DAILY_SCHEMA = "carrier string, day_number int, flights long, arrived long, ontime long"
TRAILING_SCHEMA = StructType([
    StructField("carrier", StringType()), StructField("day_number", IntegerType()),
    StructField("carrier_ontime_7d", DoubleType()), StructField("carrier_flights_7d", IntegerType(), False),
    StructField("carrier_ontime_28d", DoubleType()), StructField("carrier_flights_28d", IntegerType(), False),
])


def test_trailing_window_boundaries(spark):
    t = 100
    daily = spark.createDataFrame([
        ("UA", t - 29, 1000, 1000, 0),  # outside 28d
        ("UA", t - 28, 10, 10, 10),  # first day inside 28d
        ("UA", t - 8, 100, 100, 0),  # outside 7d, inside 28d
        ("UA", t - 7, 4, 4, 4),  # first day inside 7d
        ("UA", t - 1, 6, 4, 1),  # last day inside both
        ("UA", t, 50, 50, 50),  # the day itself: never
    ], DAILY_SCHEMA)
    got = T.trailing_performance(daily, "carrier").where(F.col("day_number") == t)
    expected = spark.createDataFrame(
        [("UA", t, 5 / 8, 10, (10 + 0 + 4 + 1) / 118, 120)], TRAILING_SCHEMA
    )
    assertDataFrameEqual(got, expected)


def test_trailing_without_history_is_null_rate_and_zero_volume(spark):
    daily = spark.createDataFrame([
        ("UA", 10, 3, 3, 3),
        ("UA", 11, 2, 0, 0),  # only cancelled flights that day
        ("UA", 12, 1, 1, 1),
        ("AA", 12, 5, 5, 5),
    ], DAILY_SCHEMA)
    got = T.trailing_performance(daily, "carrier")
    expected = spark.createDataFrame([
        ("UA", 10, None, 0, None, 0),
        ("UA", 11, 1.0, 3, 1.0, 3),
        ("UA", 12, 1.0, 5, 1.0, 5),
        ("AA", 12, None, 0, None, 0),  # keys never mix
    ], TRAILING_SCHEMA)
    assertDataFrameEqual(got, expected, checkRowOrder=False)


def test_trailing_rate_null_when_history_has_no_arrivals(spark):
    daily = spark.createDataFrame([("UA", 10, 2, 0, 0), ("UA", 11, 1, 1, 1)], DAILY_SCHEMA)
    got = T.trailing_performance(daily, "carrier").where(F.col("day_number") == 11)
    expected = spark.createDataFrame([("UA", 11, None, 2, None, 2)], TRAILING_SCHEMA)
    assertDataFrameEqual(got, expected)


def _small_world(spark):
    d1, d2, d3 = date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)
    flights = [
        flight(d1, number=1, arr_delay=30),
        flight(d1, number=2, carrier="AA", origin="JFK", dest="MIA", arr_delay=0, distance=1089),
        flight(d2, number=1, arr_delay=0, hour=5),
        flight(d2, number=3, dep_time=None, arr_delay=None, hour=5),
        flight(d3, number=1, arr_delay=None, hour=10),
        flight(d3, number=2, carrier="AA", origin="JFK", dest="MIA", arr_delay=16, distance=1089, hour=10),
    ]
    weather = [
        weather_row("EWR", "2013-01-02T10:00:00Z", temp=30.5),  # 05:00 EST on Jan 2
        weather_row("JFK", "2013-01-03T15:00:00Z", temp=28.0),  # 10:00 EST on Jan 3
    ]
    return flights_df(spark, flights), weather_df(spark, weather)


def test_build_flights_features_end_to_end(spark):
    flights, weather = _small_world(spark)
    got = T.build_flights_features(flights, weather, targets=[date(2013, 1, 2), "2013-01-03"])
    assert tuple(got.columns) == T.FEATURE_COLUMNS
    assert not {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "tailnum"} & set(got.columns)
    got = got.select(
        "flight_id", "dt", "temp", "carrier_ontime_7d", "carrier_flights_7d", "origin_ontime_28d",
        "origin_flights_28d", "route_ontime_7d", "route_flights_7d", "label", "label_status",
    )
    expected = spark.createDataFrame([
        # UA on Jan 2: history = Jan 1 UA-1 (late)
        ("UA-1-EWR-201301020500", "2013-01-02", 30.5, 0.0, 1, 0.0, 1, 0.0, 1, 0, "arrived"),
        ("UA-3-EWR-201301020500", "2013-01-02", 30.5, 0.0, 1, 0.0, 1, 0.0, 1, None, "cancelled"),
        # UA on Jan 3: history = late, on time, cancelled (volume 3, rate 1/2); no EWR weather
        ("UA-1-EWR-201301031000", "2013-01-03", None, 0.5, 3, 0.5, 3, 0.5, 3, None, "diverted"),
        # AA on Jan 3: history = Jan 1 AA-2 on time
        ("AA-2-JFK-201301031000", "2013-01-03", 28.0, 1.0, 1, 1.0, 1, 1.0, 1, 1, "arrived"),
    ], "flight_id string, dt string, temp double, carrier_ontime_7d double, carrier_flights_7d int, "
       "origin_ontime_28d double, origin_flights_28d int, route_ontime_7d double, route_flights_7d int, "
       "label int, label_status string")
    assertDataFrameEqual(got, expected, checkRowOrder=False)


def test_later_rows_change_no_earlier_feature(spark):
    """Leakage guard: flights of a later day (and their outcomes) never reach earlier days."""
    flights, weather = _small_world(spark)
    later = flights_df(spark, [
        flight(date(2013, 1, 3), number=9, arr_delay=300, hour=5),
        flight(date(2013, 1, 4), number=1, arr_delay=500),
        flight(date(2013, 1, 9), number=2, carrier="AA", origin="JFK", dest="MIA", arr_delay=-5),
    ])
    earlier = [date(2013, 1, 1), date(2013, 1, 2)]
    before = T.build_flights_features(flights, weather, targets=earlier)
    after = T.build_flights_features(flights.unionByName(later), weather, targets=earlier)
    assert before.count() == 4
    assertDataFrameEqual(after, before, checkRowOrder=False)
    # a same-day flight changes nothing for the other flights of that day either
    day3_before = T.build_flights_features(flights, weather, targets=[date(2013, 1, 3)])
    day3_after = T.build_flights_features(flights.unionByName(later), weather, targets=[date(2013, 1, 3)])
    assertDataFrameEqual(
        day3_after.where(F.col("flight_id") != "UA-9-EWR-201301030500"), day3_before, checkRowOrder=False
    )


def test_no_targets_filter_keeps_every_day(spark):
    flights, weather = _small_world(spark)
    got = T.build_flights_features(flights, weather).groupBy("dt").count()
    expected = spark.createDataFrame(
        [("2013-01-01", 2), ("2013-01-02", 2), ("2013-01-03", 2)],
        StructType([StructField("dt", StringType()), StructField("count", LongType(), False)]),
    )
    assertDataFrameEqual(got, expected, checkRowOrder=False)
