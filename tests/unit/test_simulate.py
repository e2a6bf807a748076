"""The upstream simulator: deterministic daily drops, schedule events, Firehose replay through moto."""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
from datetime import date, datetime
from typing import Any, Iterator

import pandas as pd
import pytest
from moto import mock_aws

from bad_drops import csv_text
from contrail import lake, landing, simulate

BUCKET = "contrail-test-lake"
DT = date(2013, 1, 1)
RUN = landing.RunInfo(dag_id="land", run_id="manual__1", landed_at="2026-01-01T00:00:00+00:00")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        import boto3

        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield {"s3": s3, "firehose": boto3.client("firehose", region_name="us-east-1")}


def tiny_export(dataset: str, dt: date) -> bytes:
    return csv_text(dataset, dt, rows=2).encode()


def flights_frame() -> pd.DataFrame:
    """Four flights over two days, out of time order, one without a tail number."""
    return pd.DataFrame({
        "year": [2013] * 4, "month": [1] * 4, "day": [1, 1, 1, 2],
        "dep_time": [600.0, None, 517.0, 5.0], "sched_dep_time": [600, 559, 515, 5],
        "dep_delay": [0.0, None, 2.0, 0.0], "arr_time": [900.0, None, 830.0, 300.0],
        "sched_arr_time": [905, 900, 819, 310], "arr_delay": [-5.0, None, 11.0, -10.0],
        "carrier": ["AA", "B6", "UA", "DL"], "flight": [1, 2, 1545, 4],
        "tailnum": ["N1", None, "N14228", "N4"], "origin": ["JFK", "LGA", "EWR", "JFK"],
        "dest": ["MIA", "BOS", "IAH", "ATL"], "air_time": [150.0, None, 227.0, 100.0],
        "distance": [1089, 184, 1400, 760], "hour": [6, 5, 5, 0], "minute": [0, 59, 15, 5],
        "time_hour": ["2013-01-01T11:00:00Z", "2013-01-01T10:00:00Z", "2013-01-01T10:00:00Z",
                      "2013-01-02T05:00:00Z"],
    })


# --------------------------------------------------------------------------- daily drops


def test_drop_days_writes_deterministic_gzip_per_dataset_and_day(aws: dict[str, Any]) -> None:
    s3 = aws["s3"]
    days = simulate.day_range(date(2013, 1, 1), date(2013, 1, 2))
    keys = simulate.drop_days(s3, BUCKET, days, export=tiny_export)
    first = {k: lake.read_bytes(s3, BUCKET, k) for k in keys}
    simulate.drop_days(s3, BUCKET, days, export=tiny_export)

    assert keys == ["incoming/flights/2013-01-01/flights_2013-01-01.csv.gz",
                    "incoming/weather/2013-01-01/weather_2013-01-01.csv.gz",
                    "incoming/flights/2013-01-02/flights_2013-01-02.csv.gz",
                    "incoming/weather/2013-01-02/weather_2013-01-02.csv.gz"]
    assert {k: lake.read_bytes(s3, BUCKET, k) for k in keys} == first
    assert gzip.decompress(first[keys[0]]) == tiny_export("flights", date(2013, 1, 1))
    assert first[keys[0]][4:8] == b"\0\0\0\0"  # gzip mtime field


def test_day_range_includes_both_ends_and_refuses_reversed() -> None:
    assert simulate.day_range(date(2013, 12, 30), date(2014, 1, 1)) == [
        date(2013, 12, 30), date(2013, 12, 31), date(2014, 1, 1)]
    with pytest.raises(ValueError):
        simulate.day_range(date(2013, 1, 2), date(2013, 1, 1))


def test_a_real_day_drops_and_lands_with_every_row(aws: dict[str, Any]) -> None:
    """The stage on small real data: the 2013-01-01 exports land whole, and a re-drop is a no-op."""
    from contrail import nycflights

    s3 = aws["s3"]
    simulate.drop_days(s3, BUCKET, [DT])
    flights = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)
    weather = landing.land_partition(s3, BUCKET, dataset="weather", dt=DT, run=RUN)
    simulate.drop_days(s3, BUCKET, [DT])
    again = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)

    assert flights.rows == len(nycflights.day("flights", DT)) == 842
    assert weather.rows == len(nycflights.day("weather", DT))
    assert (again.version, again.created) == (1, False)


# --------------------------------------------------------------------------- schedule events


def test_schedule_events_are_ordered_schedule_only_and_windowed() -> None:
    events = list(simulate.schedule_events(flights_frame(), datetime(2013, 1, 1, 5, 15),
                                           datetime(2013, 1, 2, 0, 5)))

    assert [e["event_id"] for e in events] == ["UA-1545-EWR-2013-01-01T05:15", "B6-2-LGA-2013-01-01T05:59",
                                               "AA-1-JFK-2013-01-01T06:00"]
    assert [e["event_time"] for e in events] == ["2013-01-01T05:15:00", "2013-01-01T05:59:00",
                                                 "2013-01-01T06:00:00"]
    assert all(not (simulate.OUTCOME_FIELDS & e.keys()) for e in events)
    assert set(events[0]) == {"event_id", "event_time", *simulate.SCHEDULE_FIELDS}
    assert events[1]["tailnum"] is None
    assert json.loads(simulate.encode_event(events[0])) == events[0]
    assert simulate.encode_event(events[0]).endswith(b"}\n")
    assert isinstance(events[0]["flight"], int) and isinstance(events[0]["distance"], int)


def test_schedule_events_refuse_an_empty_window() -> None:
    with pytest.raises(ValueError):
        list(simulate.schedule_events(flights_frame(), datetime(2013, 1, 2), datetime(2013, 1, 1)))


def test_batches_respect_record_and_byte_limits() -> None:
    records = [b"x" * 10] * 1201
    assert [len(b) for b in simulate.batches(records)] == [500, 500, 201]
    assert [len(b) for b in simulate.batches(records[:7], max_bytes=30)] == [3, 3, 1]
    assert list(simulate.batches([])) == []


class FakeFirehose:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[list[bytes]] = []
        self.fail_first = fail_first

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict[str, Any]:
        self.calls.append([r["Data"] for r in Records])
        failing = min(self.fail_first, len(Records))
        self.fail_first -= failing
        responses = [{"ErrorCode": "ServiceUnavailableException"} if i < failing else {"RecordId": str(i)}
                     for i in range(len(Records))]
        return {"FailedPutCount": failing, "RequestResponses": responses}


def test_replay_paces_by_schedule_gaps_over_speedup() -> None:
    firehose, sleeps = FakeFirehose(), []
    events = [{"event_id": str(i), "event_time": t} for i, t in enumerate(
        ["2013-01-01T05:00:00"] * 1001 + ["2013-01-01T05:10:00", "2013-01-01T06:10:00"])]

    stats = simulate.replay_stream(firehose, "s", datetime(2013, 1, 1), datetime(2013, 1, 2),
                                   speedup=60, sleep=sleeps.append, events=events)

    assert sleeps == [10.0, 60.0]  # 10 min and 60 min of schedule at 60x
    assert [len(c) for c in firehose.calls] == [500, 500, 1, 1, 1]
    assert (stats.events, stats.batches, stats.slept_s) == (1003, 5, 70.0)
    assert b"".join(b"".join(c) for c in firehose.calls).count(b"\n") == 1003


def test_replay_without_pacing_never_sleeps_and_refuses_bad_speedup() -> None:
    sleeps: list[float] = []
    simulate.replay_stream(FakeFirehose(), "s", datetime(2013, 1, 1), datetime(2013, 1, 2), math.inf,
                           sleeps.append, events=simulate.schedule_events(
                               flights_frame(), datetime(2013, 1, 1), datetime(2013, 1, 3)))
    assert sleeps == []
    with pytest.raises(ValueError):
        simulate.replay_stream(FakeFirehose(), "s", datetime(2013, 1, 1), datetime(2013, 1, 2), 0, events=[])


def test_put_batch_resends_only_failed_records_then_gives_up() -> None:
    firehose, sleeps = FakeFirehose(fail_first=2), []
    simulate.put_batch(firehose, "s", [b"a", b"b", b"c"], sleep=sleeps.append)
    assert firehose.calls == [[b"a", b"b", b"c"], [b"a", b"b"]]
    with pytest.raises(RuntimeError, match="still rejected"):
        simulate.put_batch(FakeFirehose(fail_first=10**6), "s", [b"a"], sleep=lambda s: None)


# --------------------------------------------------------------------------- Firehose through moto


def test_firehose_delivers_replayed_events_under_stream_hour_prefixes(aws: dict[str, Any]) -> None:
    s3, firehose = aws["s3"], aws["firehose"]
    arn = simulate.ensure_delivery_stream(firehose, "flight-events", f"arn:aws:s3:::{BUCKET}",
                                          simulate.LOCAL_ROLE_ARN)
    assert simulate.ensure_delivery_stream(firehose, "flight-events", f"arn:aws:s3:::{BUCKET}",
                                           simulate.LOCAL_ROLE_ARN) == arn  # idempotent

    stats = simulate.replay_stream(firehose, "flight-events", datetime(2013, 1, 1), datetime(2013, 1, 3),
                                   math.inf, events=simulate.schedule_events(
                                       flights_frame(), datetime(2013, 1, 1), datetime(2013, 1, 3)))

    # Firehose names objects by arrival hour (UTC), not by event time
    keys = sorted(o.key for o in lake.list_objects(s3, BUCKET, ""))
    assert keys and all(re.fullmatch(r"stream/flights/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+", k) for k in keys)
    lines = b"".join(lake.read_bytes(s3, BUCKET, k) for k in keys).splitlines()
    assert len(lines) == stats.events == 4
    assert sorted(json.loads(line)["event_id"] for line in lines) == sorted(
        e["event_id"] for e in simulate.schedule_events(flights_frame(), datetime(2013, 1, 1),
                                                        datetime(2013, 1, 3)))


# --------------------------------------------------------------------------- CLI


def test_cli_arguments_plug_into_a_parent_parser() -> None:
    parser = argparse.ArgumentParser(prog="contrail")
    simulate.add_arguments(parser.add_subparsers(dest="command", required=True))

    drops = parser.parse_args(["simulate", "drops", "--from", "2013-01-01", "--to", "2013-01-03",
                               "--dataset", "flights"])
    stream = parser.parse_args(["simulate", "stream", "--start", "2013-01-01T05:00",
                                "--end", "2013-01-01T07:00", "--speedup", "inf"])

    assert (drops.handler, drops.first, drops.last, drops.datasets) == (
        simulate.handle_drops, date(2013, 1, 1), date(2013, 1, 3), ["flights"])
    assert (stream.handler, stream.start, stream.speedup) == (
        simulate.handle_stream, datetime(2013, 1, 1, 5), math.inf)


def test_cli_handlers_drop_and_stream_into_the_configured_bucket(
        aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONTRAIL_ENV", "local")
    monkeypatch.setenv("CONTRAIL_BUCKET", BUCKET)
    monkeypatch.setattr(simulate.lake, "s3_client", lambda settings: aws["s3"])
    monkeypatch.setattr(simulate.lake, "client", lambda service, settings: aws[service])
    parser = argparse.ArgumentParser(prog="contrail")
    simulate.add_arguments(parser.add_subparsers(dest="command", required=True))

    drops = parser.parse_args(["simulate", "drops", "--from", "2013-01-01", "--dataset", "weather"])
    stream = parser.parse_args(["simulate", "stream", "--start", "2013-01-01T05:00",
                                "--end", "2013-01-01T06:00", "--speedup", "inf"])

    assert drops.handler(drops) == 0 and stream.handler(stream) == 0
    assert [o.key for o in lake.list_objects(aws["s3"], BUCKET, "incoming/")] == [
        "incoming/weather/2013-01-01/weather_2013-01-01.csv.gz"]
    lines = b"".join(lake.read_bytes(aws["s3"], BUCKET, o.key)
                     for o in lake.list_objects(aws["s3"], BUCKET, "stream/flights/")).splitlines()
    assert lines and all(json.loads(line)["event_time"].startswith("2013-01-01T05:") for line in lines)
    assert f"put {len(lines)} events" in capsys.readouterr().out
