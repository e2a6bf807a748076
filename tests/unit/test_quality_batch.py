"""A catch-up validated in batches gives every partition exactly the result validating it alone
gives: real days (with their warnings, tolerated unknown airports and cancelled flights) and
broken days of every kind of rule, side by side in one chunk. Real GX, one gate (GX's
expectation ids are per gate, so both ways share it)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from contrail import catalog, nycflights
from contrail.quality import QualityGate
from test_quality import BAD_FEATURES, BAD_FLIGHTS, BAD_WEATHER, features_day
from test_quality_real_days import FOREIGN_TAIL_DAYS, NO_WEATHER_DAY, SLOW_FLIGHT_DAY, STORM_DAYS

FLIGHT_DAYS = [date(2013, 2, 7), min(STORM_DAYS), min(FOREIGN_TAIL_DAYS), SLOW_FLIGHT_DAY, date(2013, 3, 10)]
BROKEN_FLIGHTS = ("duplicate key", "wrong year", "row count 10", "too far", "cancelled but arrived",
                  "dest column missing", "distance as float", "route with two distances")
WEATHER_DAYS = [date(2013, 2, 7), date(2013, 2, 12), date(2013, 11, 3), date(2013, 12, 30), NO_WEATHER_DAY]
BROKEN_WEATHER = ("dew point above temp", "duplicate hour", "broken wind sensor", "gust in a calm",
                  "direction in a calm")


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> QualityGate:
    return QualityGate(docs_dir=tmp_path_factory.mktemp("docs"))


def _partitions(dataset: str, days: list[date], broken: tuple[str, ...], cases: dict) -> list:
    """The real days, then each broken case on a day of its own (a week after the last real one)."""
    out = [(nycflights.day(dataset, d), d, 1) for d in days]
    for i, name in enumerate(broken):
        day = date(2013, 4, 1) + timedelta(days=i)
        out.append((cases[name][0](nycflights.day(dataset, day)), day, 2))
    return out


def _comparable(report) -> dict:
    """A report with the fields that name the moment of the run blanked."""
    out = json.loads(json.dumps(report.as_dict()))
    meta = out["result_json"]["meta"]
    meta["run_id"]["run_time"] = meta["validation_time"] = meta["batch_markers"]["ge_load_time"] = None
    return out


def _differences(got, want, path="") -> list[str]:
    if isinstance(got, dict) and isinstance(want, dict):
        return [d for k in sorted(set(got) | set(want)) for d in _differences(got.get(k), want.get(k), f"{path}.{k}")]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in _differences(g, w, f"{path}[{i}]")]
    return [] if got == want else [f"{path}: {str(got)[:200]} != {str(want)[:200]}"]


@pytest.mark.parametrize("dataset, days, broken, cases", [
    ("flights", FLIGHT_DAYS, BROKEN_FLIGHTS, BAD_FLIGHTS),
    ("weather", WEATHER_DAYS, BROKEN_WEATHER, BAD_WEATHER),
], ids=["flights", "weather"])
def test_a_batch_judges_each_partition_as_validating_it_alone(gate, monkeypatch, dataset, days, broken, cases):
    suite = f"{dataset}_raw"
    partitions = _partitions(dataset, days, broken, cases)
    alone = [gate.validate(df, suite=suite, dataset=dataset, dt=dt, version=v) for df, dt, v in partitions]

    validated_alone = []
    real_validate = gate.validate
    monkeypatch.setattr(gate, "validate", lambda df, **kw: validated_alone.append(kw["dt"]) or real_validate(df, **kw))
    batched = gate.validate_many(partitions, suite=suite, dataset=dataset)

    for a, b in zip(alone, batched):
        assert _differences(_comparable(b), _comparable(a)) == [], a.dt
    # the real days were judged in the batch (only broken or odd-shaped days alone), and the
    # batch saw warnings, tolerated unknown airports and an empty day as validating alone does
    assert not set(validated_alone) & set(days[:4]), validated_alone
    assert [a.passed for a in alone] == [d != NO_WEATHER_DAY for d in days] + [False] * len(broken)
    if dataset == "flights":
        assert {w.expectation for a in alone[:4] for w in a.warnings} >= {
            "expect_column_values_to_match_regex", "expect_column_min_to_be_between",
            "expect_column_proportion_of_non_null_values_to_be_between"}


FEATURE_DAYS = [date(2013, 1, 1), date(2013, 2, 8), date(2013, 3, 10), date(2013, 7, 4), date(2013, 12, 31)]


def test_the_features_gate_batches_exactly_too(gate, monkeypatch):
    """The features audit validates a build's days together: the same verdicts, failures and
    results as one by one, for real days and each broken case (a fan-out duplicate is unique
    only within its day; a leaked outcome column changes the day's columns)."""
    partitions = [(features_day(d), d, 1) for d in FEATURE_DAYS]
    for i, (mutate, _) in enumerate(BAD_FEATURES.values()):
        day = date(2013, 5, 1) + timedelta(days=i)
        partitions.append((mutate(features_day(day)), day, 1))
    dataset = "features_flights_v1"
    alone = [gate.validate(df, suite="features", dataset=dataset, dt=dt, version=v) for df, dt, v in partitions]

    validated_alone = []
    real_validate = gate.validate
    monkeypatch.setattr(gate, "validate", lambda df, **kw: validated_alone.append(kw["dt"]) or real_validate(df, **kw))
    batched = gate.validate_many(partitions, suite="features", dataset=dataset)

    for a, b in zip(alone, batched):
        assert _differences(_comparable(b), _comparable(a)) == [], a.dt
    assert not set(validated_alone) & set(FEATURE_DAYS), validated_alone
    assert [a.passed for a in alone] == [True] * len(FEATURE_DAYS) + [False] * len(BAD_FEATURES)
    # a day with a duplicate key keeps GX's own result (judged alone); rows out of a set or
    # range are attributed from the batch
    broken = dict(zip(BAD_FEATURES, [dt for _, dt, _ in partitions[len(FEATURE_DAYS):]]))
    assert broken["fan-out duplicate"] in validated_alone
    assert broken["rate above 1"] not in validated_alone


def test_every_batched_partition_has_its_own_validation_page(gate):
    days = [date(2013, 5, 1) + timedelta(days=i) for i in range(4)]
    gate.validate_many([(nycflights.day("weather", d), d, 3) for d in days], suite="weather_raw", dataset="weather")
    site = gate.build_data_docs()
    keys = [p.relative_to(site).as_posix() for p in site.rglob("*.html")]
    keys = [catalog.validation_pages_prefix() + k for k in keys]
    pages = [catalog.validation_page(keys, dataset="weather", dt=d, version=3) for d in days]
    assert all(pages) and len(set(pages)) == len(days)
    text = (site / pages[0][len(catalog.validation_pages_prefix()):]).read_text()
    assert "weather_raw" in text and "2013-05-01" in pages[0]
