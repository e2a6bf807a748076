"""The quality gate: each suite rejects crafted bad partitions, naming the rule that fired.

Pure helpers (CSV parsing, prepare, suite loading) are tested on tiny frames without GX; the
gate tests share one module-scoped QualityGate (GX is imported once) and start from a real
day so that each case changes exactly one thing.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contrail import nycflights
from contrail.quality import (
    SUITES,
    QualityGate,
    QualityReport,
    load_suite_document,
    prepare,
    publish_data_docs,
    read_landed_csv,
    suite_parameters,
)

DAY = date(2013, 3, 1)


# --------------------------------------------------------------------------- pure helpers

@pytest.mark.parametrize("compress", [True, False])
def test_read_landed_csv_matches_nycflights_day(compress: bool) -> None:
    body = nycflights.day_csv("flights", DAY)
    parsed = read_landed_csv(gzip.compress(body) if compress else body)
    pd.testing.assert_frame_equal(parsed, nycflights.day("flights", DAY))


def test_read_landed_csv_keeps_non_integers_for_the_type_rule() -> None:
    parsed = read_landed_csv(b"dep_time,dest\n12.5,NA\n,LAX\n")
    assert parsed["dep_time"].dtype == "float64"
    assert parsed["dest"].isna().tolist() == [True, False]


def test_prepare_derives_minutes_dates_and_time_zone_check() -> None:
    raw = pd.DataFrame({
        "year": [2013, 2013, 2013], "month": [3, 13, 3], "day": [1, 1, 1],
        "sched_dep_time": [517, 1275, 2359], "sched_arr_time": [830, 900, 5],
        "dep_time": pd.array([2400, None, 1], dtype="Int64"),
        "arr_time": pd.array([1, None, 100], dtype="Int64"),
        "hour": [5, 12, 23],
        # 10:17 UTC is 05:17 EST; the third row's time_hour is an hour off
        "time_hour": ["2013-03-01T10:00:00Z", "2013-03-01T17:00:00Z", "2013-03-02T03:00:00Z"],
    })
    out = prepare(raw, "flights_raw")

    assert out["_flight_date"].tolist() == ["2013-03-01", None, "2013-03-01"]
    assert out["_sched_dep_minute"].tolist() == [17, 75, 59]
    assert out["_sched_dep_hour"].tolist() == [5, 12, 23]
    assert out["_dep_minute"].tolist() == [0, pd.NA, 1]
    assert out["_time_hour_matches_schedule"].tolist() == [True, False, False]
    assert list(raw.columns) == list(out.columns[: len(raw.columns)])  # source untouched, derived appended
    assert "_flight_date" not in raw.columns


def test_prepare_tolerates_missing_columns() -> None:
    out = prepare(pd.DataFrame({"origin": ["EWR"]}), "weather_raw")
    assert out["_obs_date"].isna().all() and not out["_time_hour_matches_local"].any()


def test_prepare_checks_delays_against_the_clocks_modulo_a_day() -> None:
    raw = pd.DataFrame({
        # left 6 minutes late, after midnight; 1 minute off; 2400 is midnight; not departed
        "sched_dep_time": [2359, 1000, 2350, 800],
        "dep_time": pd.array([5, 1010, 2400, None], dtype="Int64"),
        "dep_delay": pd.array([6, 11, 10, None], dtype="Int64"),
        "sched_arr_time": [300, 1200, 30, 1000],
        "arr_time": pd.array([250, 1300, 100, None], dtype="Int64"),
        "arr_delay": pd.array([-10, 30, 30, None], dtype="Int64"),
    })
    out = prepare(raw, "flights_raw")

    assert out["_dep_delay_clock_residual"].tolist() == [0, 1, 0, pd.NA]
    assert out["_arr_delay_clock_residual"].tolist() == [0, 1440 - 30, 0, pd.NA]


def test_prepare_derives_air_speed_block_time_and_route_checks() -> None:
    raw = pd.DataFrame({
        "origin": ["JFK", "JFK", "EWR", "LGA"], "dest": ["LAX", "LAX", "EWR", "ATL"],
        "distance": [2475, 2475, 10, 762],
        "dep_time": pd.array([2300, 800, None, 1709], dtype="Int64"),
        "arr_time": pd.array([130, 1100, None, 1923], dtype="Int64"),  # LAX clock: 3 h behind
        "air_time": pd.array([330, 0, None, 65], dtype="Int64"),
    })
    out = prepare(raw, "flights_raw")

    assert out["_air_time_over_block_clock"].tolist() == [330 - 150, 0 - 180, pd.NA, 65 - 134]
    assert out["_implied_mph"].tolist()[0] == 2475 / 5.5
    assert out["_implied_mph"].tolist()[1] == float("inf")  # zero air time: the speed rule fires
    assert out["_origin_is_dest"].tolist() == [False, False, True, False]
    assert out["_route_distances"].tolist() == [1, 1, 1, 1]
    raw.loc[1, "distance"] = 2470
    assert prepare(raw, "flights_raw")["_route_distances"].tolist() == [2, 2, 1, 1]


def test_prepare_compares_humidity_with_the_magnus_formula() -> None:
    raw = pd.DataFrame({"temp": [68.0, 86.0, 86.0, None], "dewp": [68.0, 50.0, 50.0, 40.0],
                        "humid": [100.0, 28.94, 0.2894, 50.0]})
    residual = prepare(raw, "weather_raw")["_humid_minus_magnus"]

    assert residual.iloc[:2].abs().max() < 0.01  # saturated air; 30 C with a 10 C dew point
    assert residual.iloc[2] < -28  # a fraction written where percent is expected
    assert residual.isna().tolist() == [False, False, False, True]


@pytest.mark.parametrize("suite", SUITES)
def test_suites_load_with_severity_and_reasons(suite: str) -> None:
    doc = load_suite_document(suite)
    assert doc["expectations"]
    assert all(e["meta"]["why"] for e in doc["expectations"])


def test_suite_parameters_are_placeholders() -> None:
    assert suite_parameters(load_suite_document("flights_raw")) == {"airlines", "airports", "partition_dates"}
    assert suite_parameters(load_suite_document("features")) == {"airlines", "partition_dates"}


def test_suite_without_severity_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(
        {"name": "bad", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "a"}}]}))
    with pytest.raises(ValueError, match="severity"):
        load_suite_document("bad", suites_dir=tmp_path)


# --------------------------------------------------------------------------- the gate

BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
UNIQUE = "expect_compound_columns_to_be_unique"
NOT_NULL = "expect_column_values_to_not_be_null"

@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> QualityGate:
    return QualityGate(docs_dir=tmp_path_factory.mktemp("data-docs"))


def _fired(report: QualityReport) -> set[tuple[str, tuple[str, ...]]]:
    return {(f.expectation, f.columns) for f in report.failures}


def _flights(gate: QualityGate, df: pd.DataFrame, dt: date = DAY) -> QualityReport:
    return gate.validate(df, suite="flights_raw", dataset="flights", dt=dt, version=1)


def test_real_day_passes_clean(gate: QualityGate) -> None:
    report = _flights(gate, nycflights.day("flights", DAY))
    assert report.passed, report.summary()
    assert report.failures == () and report.warnings == ()
    assert report.row_count == 958


def _duplicate_first_row(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.iloc[[0]]], ignore_index=True)


def _set(column: str, value, rows=slice(0, 1)):
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[df.index[rows], column] = value
        return df
    return mutate


def _cancelled_but_arrived(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    cancelled = df.index[df["dep_time"].isna()][0]
    df.loc[cancelled, "arr_time"] = 1200
    return df


def _on_row(where: str, **changes):
    """Change the first row matching ``where`` (a pandas query); values may be functions of the old row."""
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        row = df.query(where).index[0]
        for column, value in changes.items():
            df.loc[row, column] = value(df.loc[row]) if callable(value) else value
        return df
    return mutate


def _second_distance_on_a_route(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    flown_twice = df.index[df.duplicated(["origin", "dest"], keep="first")][0]
    df.loc[flown_twice, "distance"] += 1
    return df


ARRIVED = "arr_delay.notnull()"

BAD_FLIGHTS = {
    "duplicate key": (_duplicate_first_row,
                      (UNIQUE, ("carrier", "flight", "origin", "sched_dep_time"))),
    "JFX origin": (_set("origin", "JFX"), ("expect_column_values_to_be_in_set", ("origin",))),
    "unknown carrier": (_set("carrier", "ZZ"), ("expect_column_values_to_be_in_set", ("carrier",))),
    "row count 10": (lambda df: df.head(10), ("expect_table_row_count_to_be_between", ())),
    "wrong year": (_set("year", 2012, slice(None)), ("expect_column_values_to_be_in_set", ("_flight_date",))),
    "minute 75": (_set("sched_dep_time", 1275), (BETWEEN, ("_sched_dep_minute",))),
    "arrival 2460": (_set("sched_arr_time", 2460), (BETWEEN, ("sched_arr_time",))),
    "zero distance": (_set("distance", 0), ("expect_column_values_to_be_between", ("distance",))),
    "too far": (_set("distance", 5000), ("expect_column_values_to_be_between", ("distance",))),
    "cancelled but arrived": (_cancelled_but_arrived, ("expect_column_values_to_be_null", ("arr_time",))),
    "time_hour an hour off": (_set("time_hour", "2013-03-01T11:00:00Z"),
                              ("expect_column_values_to_be_in_set", ("_time_hour_matches_schedule",))),
    "dep_delay off the clock": (_on_row(ARRIVED, dep_delay=lambda r: r["dep_delay"] + 1),
                                (BETWEEN, ("_dep_delay_clock_residual",))),
    "arr_delay off the clock": (_on_row(ARRIVED, arr_delay=lambda r: r["arr_delay"] - 30),
                                (BETWEEN, ("_arr_delay_clock_residual",))),
    "dep_delay a day more": (_on_row(ARRIVED, dep_delay=lambda r: r["dep_delay"] + 1440),
                             (BETWEEN, ("dep_delay",))),
    "arr_delay a day less": (_on_row(ARRIVED, arr_delay=lambda r: r["arr_delay"] - 1440),
                             (BETWEEN, ("arr_delay",))),
    "departed without delay": (_on_row("dep_time.notnull()", dep_delay=None), (NOT_NULL, ("dep_delay",))),
    "arrived without air time": (_on_row(ARRIVED, air_time=None), (NOT_NULL, ("air_time",))),
    "air time without arrival": (_on_row(ARRIVED, arr_delay=None), ("expect_column_values_to_be_null", ("air_time",))),
    "air time beyond the block": (_on_row(ARRIVED + " and distance > 2000", air_time=lambda r: r["air_time"] + 400),
                                  (BETWEEN, ("_air_time_over_block_clock",))),
    "air time in hours": (_on_row(ARRIVED, air_time=lambda r: r["air_time"] // 60),
                          (BETWEEN, ("_implied_mph",))),
    "origin is dest": (_on_row("origin == 'JFK'", dest="JFK"), (IN_SET, ("_origin_is_dest",))),
    "route with two distances": (_second_distance_on_a_route, (BETWEEN, ("_route_distances",))),
    "dest column missing": (lambda df: df.drop(columns="dest"), ("expect_table_columns_to_match_set", ())),
    "distance as float": (lambda df: df.astype({"distance": "float64"}),
                          ("expect_column_values_to_be_in_type_list", ("distance",))),
}


@pytest.mark.parametrize("mutate, rule", BAD_FLIGHTS.values(), ids=BAD_FLIGHTS.keys())
def test_flights_raw_rejects(gate: QualityGate, mutate, rule) -> None:
    report = _flights(gate, mutate(nycflights.day("flights", DAY)))
    assert not report.passed
    assert rule in _fired(report), report.summary()


def test_unknown_destinations_are_tolerated_up_to_mostly(gate: QualityGate) -> None:
    df = nycflights.day("flights", DAY)
    few, many = df.copy(), df.copy()
    # ~1% + the ~2% Caribbean codes: under 5% (one code per row: one distance per route)
    few.loc[few.index[:10], "dest"] = [f"X{i:02d}" for i in range(10)]
    many.loc[many.index[:200], "dest"] = "XXX"  # ~21%
    assert _flights(gate, few).passed
    assert ("expect_column_values_to_be_in_set", ("dest",)) in _fired(_flights(gate, many))


def test_warning_only_violation_passes_and_is_listed(gate: QualityGate) -> None:
    df = nycflights.day("flights", DAY)
    df.loc[df.index[: len(df) // 2], "tailnum"] = None

    report = _flights(gate, df)

    assert report.passed, report.summary()
    assert report.failures == ()
    assert [(w.severity, w.expectation, w.columns) for w in report.warnings] == [
        ("warning", "expect_column_values_to_not_be_null", ("tailnum",))]
    assert "[warning] expect_column_values_to_not_be_null(tailnum" in report.summary()


WARN_FLIGHTS = {
    "slow flight": (_on_row(ARRIVED + " and distance < 300", air_time=lambda r: r["distance"]),  # 60 mph
                    "expect_column_min_to_be_between"),
    "fast flight": (_on_row(ARRIVED + " and origin == 'LGA' and dest == 'ATL'", air_time=65),  # 762 miles: 703 mph
                    "expect_column_max_to_be_between"),
    "foreign tail": (_on_row("tailnum.notnull()", tailnum="D942DN"), "expect_column_values_to_match_regex"),
}


@pytest.mark.parametrize("mutate, rule", WARN_FLIGHTS.values(), ids=WARN_FLIGHTS.keys())
def test_flights_raw_plausibility_warnings_pass_and_are_listed(gate: QualityGate, mutate, rule) -> None:
    report = _flights(gate, mutate(nycflights.day("flights", DAY)))
    assert report.passed, report.summary()
    assert [w.expectation for w in report.warnings] == [rule]


def test_summary_names_partition_and_rule_and_serialises(gate: QualityGate) -> None:
    df = nycflights.day("flights", DAY)
    df.loc[df.index[:3], "origin"] = "JFX"
    report = gate.validate(df, suite="flights_raw", dataset="flights", dt=DAY, version=7)

    text = report.summary()
    assert text.startswith("quality FAILED: flights dt=2013-03-01 v=0007 (suite flights_raw, 958 rows)")
    assert "[critical] expect_column_values_to_be_in_set(origin; value_set=['EWR', 'JFK', 'LGA'])" in text
    assert "3 of 958 unexpected, e.g. ['JFX', 'JFX', 'JFX']" in text
    doc = json.loads(json.dumps(report.as_dict()))
    assert doc["dt"] == "2013-03-01" and doc["passed"] is False
    assert doc["failures"][0]["unexpected_count"] == 3
    assert doc["result_json"]["success"] is False


# --------------------------------------------------------------------------- weather

def _weather(gate: QualityGate, df: pd.DataFrame) -> QualityReport:
    return gate.validate(df, suite="weather_raw", dataset="weather", dt=DAY, version=1)


def _dew_above_temp(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[df.index[0], "dewp"] = df.loc[df.index[0], "temp"] + 5
    return df


BAD_WEATHER = {
    "temp 200F": (_set("temp", 200.0), ("expect_column_values_to_be_between", ("temp",))),
    "humidity 130": (_set("humid", 130.0), ("expect_column_values_to_be_between", ("humid",))),
    "negative precip": (_set("precip", -0.1), ("expect_column_values_to_be_between", ("precip",))),
    "dew point above temp": (_dew_above_temp,
                             ("expect_column_pair_values_a_to_be_greater_than_b", ("temp", "dewp"))),
    "duplicate hour": (_duplicate_first_row, (UNIQUE, ("origin", "time_hour"))),
    "humidity as a fraction": (_on_row("humid > 50", humid=lambda r: r["humid"] / 100),
                               (BETWEEN, ("_humid_minus_magnus",))),
    "gust below wind": (_on_row("wind_speed > 5", wind_gust=lambda r: r["wind_speed"] - 1),
                        ("expect_column_pair_values_a_to_be_greater_than_b", ("wind_gust", "wind_speed"))),
    "gust in a calm": (_on_row("wind_speed == 0", wind_gust=15.0), ("expect_column_values_to_be_null", ("wind_gust",))),
    "direction in a calm": (_on_row("wind_speed > 0 and wind_gust.isnull()", wind_speed=0.0),
                            (IN_SET, ("wind_dir",))),
    "calm direction in a wind": (_on_row("wind_speed > 0", wind_dir=0), (BETWEEN, ("wind_dir",))),
    "pressure a New York station never sees": (_set("pressure", 912.0), (BETWEEN, ("pressure",))),
    "broken wind sensor": (_set("wind_speed", 900.0, slice(0, 24)),
                           ("expect_column_values_to_be_between", ("wind_speed",))),
}


@pytest.mark.parametrize("mutate, rule", BAD_WEATHER.values(), ids=BAD_WEATHER.keys())
def test_weather_raw_rejects(gate: QualityGate, mutate, rule) -> None:
    report = _weather(gate, mutate(nycflights.day("weather", DAY)))
    assert not report.passed
    assert rule in _fired(report), report.summary()


def test_single_impossible_wind_reading_only_warns(gate: QualityGate) -> None:
    report = _weather(gate, _set("wind_speed", 1048.36)(nycflights.day("weather", DAY)))
    assert report.passed, report.summary()
    assert [w.expectation for w in report.warnings] == ["expect_column_max_to_be_between"]


# --------------------------------------------------------------------------- features

def features_day(dt: date) -> pd.DataFrame:
    """A features partition shaped like the Spark job's output, built from one real day."""
    fl = nycflights.day("flights", dt)
    weather = nycflights.day("weather", dt)
    values = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    fl = fl.merge(weather[["origin", "time_hour", *values]], on=["origin", "time_hour"], how="left")
    status = np.select([fl["dep_time"].isna(), fl["arr_delay"].isna()], ["cancelled", "diverted"], "arrived")
    label = fl["arr_delay"].ge(15).astype("Int64").where(status == "arrived")
    out = pd.DataFrame({
        "flight_id": (fl["carrier"] + "-" + fl["flight"].astype(str) + "-" + fl["origin"] + "-"
                      + dt.strftime("%Y%m%d") + fl["hour"].map("{:02d}".format)
                      + fl["minute"].map("{:02d}".format)),
        "dt": dt.isoformat(),
        "time_hour": pd.to_datetime(fl["time_hour"], utc=True),
        "origin": fl["origin"], "dest": fl["dest"], "carrier": fl["carrier"],
        "route": fl["origin"] + "-" + fl["dest"], "distance": fl["distance"].astype("int32"),
        "sched_dep_hour": fl["hour"].astype("int32"), "sched_dep_weekday": dt.isoweekday(),
        "month": dt.month, **{v: fl[v] for v in values},
    })
    for key in ("carrier", "origin", "route"):
        for days in (7, 28):
            out[f"{key}_ontime_{days}d"] = 0.8
            out[f"{key}_flights_{days}d"] = 100
    out.loc[out.index[:5], "route_ontime_7d"] = None  # a new route has no history: rate null
    out.loc[out.index[:5], "route_flights_7d"] = 0
    out["label"] = label
    out["label_status"] = status
    return out


def _features(gate: QualityGate, df: pd.DataFrame) -> QualityReport:
    return gate.validate(df, suite="features", dataset="features_flights_v1", dt=DAY, version=1)


def test_features_from_a_real_day_pass(gate: QualityGate) -> None:
    report = _features(gate, features_day(DAY))
    assert report.passed, report.summary()
    assert report.failures == () and report.warnings == ()


def _label_on(status: str, value):
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[df.index[df["label_status"] == status][:20], "label"] = value
        return df
    return mutate


BAD_FEATURES = {
    "outcome column present": (lambda df: df.assign(arr_delay=1),
                               ("expect_table_columns_to_not_contain", ())),
    "label 2": (_label_on("arrived", 2), ("expect_column_values_to_be_in_set", ("label",))),
    "arrived without label": (_label_on("arrived", None), (NOT_NULL, ("label",))),
    "cancelled with label": (_label_on("cancelled", 0), ("expect_column_values_to_be_null", ("label",))),
    "null volume": (_set("carrier_flights_28d", None), ("expect_column_values_to_not_be_null",
                                                         ("carrier_flights_28d",))),
    "rate above 1": (_set("origin_ontime_7d", 1.5), (BETWEEN, ("origin_ontime_7d",))),
    "fan-out duplicate": (_duplicate_first_row, ("expect_column_values_to_be_unique", ("flight_id",))),
    "route missing": (lambda df: df.drop(columns="route"), ("expect_table_columns_to_match_set", ())),
}


@pytest.mark.parametrize("mutate, rule", BAD_FEATURES.values(), ids=BAD_FEATURES.keys())
def test_features_rejects(gate: QualityGate, mutate, rule) -> None:
    report = _features(gate, mutate(features_day(DAY)))
    assert not report.passed
    assert rule in _fired(report), report.summary()


def test_outcome_rule_names_the_leaked_columns(gate: QualityGate) -> None:
    report = _features(gate, features_day(DAY).assign(dep_delay=0, air_time=0))
    leak = next(f for f in report.failures if f.expectation == "expect_table_columns_to_not_contain")
    assert leak.observed == ["dep_delay", "air_time"]


# --------------------------------------------------------------------------- Data Docs

def test_data_docs_build_and_publish(gate: QualityGate) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    _flights(gate, nycflights.day("flights", DAY))  # at least one result, whatever ran before
    site = gate.build_data_docs()
    index = (site / "index.html").read_text()
    assert "flights_dt=2013-03-01_v=0001" in index and "flights_raw" in index

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lake")
        uri = publish_data_docs(s3, "lake", site)

        assert uri == "s3://lake/quality/data-docs/index.html"
        head = s3.head_object(Bucket="lake", Key="quality/data-docs/index.html")
        assert head["ContentType"].startswith("text/html")
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="quality/data-docs/")["Contents"]}
        assert any(k.endswith(".css") for k in keys)
        assert any(k.startswith("quality/data-docs/validations/") for k in keys)
        css = next(k for k in keys if k.endswith(".css"))
        assert s3.head_object(Bucket="lake", Key=css)["ContentType"] == "text/css"


def test_a_runs_build_keeps_pages_only_and_nothing_unchanged_is_put_again(gate: QualityGate) -> None:
    """The site root holds GX's static assets once; a run's build holds its pages, and its
    ``static/…`` is served from the root's. Publishing the same build again puts nothing."""
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    from contrail import catalog

    _flights(gate, nycflights.day("flights", DAY))
    site = gate.build_data_docs()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lake")
        publish_data_docs(s3, "lake", site)
        run_prefix = catalog.data_docs_prefix("scheduled__2013-03-01T00:00:00+00:00")
        publish_data_docs(s3, "lake", site, prefix=run_prefix)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="quality/")["Contents"]}
        run_keys = {k for k in keys if k.startswith(run_prefix)}
        assert run_prefix + "index.html" in run_keys and any("/validations/" in k for k in run_keys)
        assert not any(k.startswith(run_prefix + "static/") for k in run_keys)
        root_static = sorted(k for k in keys if k.startswith("quality/data-docs/static/"))
        assert root_static
        # each asset a run's page links to resolves to the root's copy
        asset = root_static[0][len("quality/data-docs/"):]
        assert catalog.data_docs_shared(run_prefix + asset) == root_static[0]
        assert catalog.data_docs_shared(run_prefix + "index.html") is None
        assert catalog.data_docs_shared("quality/data-docs/" + asset) is None

        puts = []
        s3.meta.events.register("before-call.s3.PutObject", lambda **kw: puts.append(kw["params"]["Key"]))
        publish_data_docs(s3, "lake", site)
        publish_data_docs(s3, "lake", site, prefix=run_prefix)
        assert puts == []
