"""The micro-batch path: record validation, notifications, stream features, and exactly-once
processing against an in-process moto S3 (a killed task, a re-run, duplicate notifications,
duplicate deliveries across objects, malformed records), plus compaction idempotence.
"""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from contrail import catalog, lake
from contrail.stream import compaction, events, ledger, lookups
from contrail.settings import load_settings
from contrail.simulate import encode_event, event_id
from contrail.training import FEATURES

BUCKET = "contrail-test"
MODEL = "flight_delay"
FEATURE_SET = "flights_v1"
PROCESSED = "2026-11-29T09:00:00.000+00:00"


def make_event(carrier: str = "UA", flight: int = 1545, origin: str = "EWR", dest: str = "IAH",
               when: datetime = datetime(2013, 1, 2, 5, 15), distance: int = 1400) -> dict[str, Any]:
    utc_hour = when.replace(minute=0).isoformat()  # the tests do not need a real UTC offset
    return {
        "event_id": event_id(carrier, flight, origin, when), "event_time": when.isoformat(),
        "year": when.year, "month": when.month, "day": when.day,
        "sched_dep_time": when.hour * 100 + when.minute, "sched_arr_time": 830,
        "carrier": carrier, "flight": flight, "tailnum": "N14228", "origin": origin, "dest": dest,
        "distance": distance, "hour": when.hour, "minute": when.minute, "time_hour": f"{utc_hour}Z",
    }


def body(*records: dict | str) -> bytes:
    return b"".join(encode_event(r) if isinstance(r, dict) else (r + "\n").encode() for r in records)


E1 = make_event()
E2 = make_event(carrier="AA", flight=1141, origin="JFK", dest="MIA", when=datetime(2013, 1, 2, 5, 40),
                distance=1089)
E3 = make_event(carrier="B6", flight=725, origin="JFK", dest="BQN", when=datetime(2013, 1, 2, 6, 0),
                distance=1576)


# --------------------------------------------------------------------------- pure


def test_queue_url_is_built_without_network():
    local = load_settings({"CONTRAIL_EMULATOR_PORT": "14566", "CONTRAIL_BUCKET": "b"})
    assert events.queue_url(local) == "http://127.0.0.1:14566/123456789012/b-stream-events"
    aws = load_settings({"CONTRAIL_ENV": "aws"})
    with pytest.raises(ValueError, match="CONTRAIL_STREAM_QUEUE_URL"):
        events.queue_url(aws, {})
    url = "https://sqs.us-east-1.amazonaws.com/111122223333/contrail-lake-stream-events"
    assert events.queue_url(aws, {"CONTRAIL_STREAM_QUEUE_URL": url}) == url


def _notification(*keys: str, event: str = "ObjectCreated:Put") -> str:
    from urllib.parse import quote_plus

    return json.dumps({"Records": [{"eventName": event, "s3": {"object": {"key": quote_plus(k)}}}
                                   for k in keys]})


def test_notifications_skip_the_test_event_and_decode_keys():
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    assert events.keys_from_notification(test_event) == []
    assert events.keys_from_notification("not json") == []
    key = "stream/flights/2026/11/29/09/contrail lake-flight-events-1-2026-11-29-09-00-00-ab:cd"
    assert events.keys_from_notification(_notification(key)) == [key]
    assert events.keys_from_notification(_notification("incoming/x.csv")) == []
    assert events.keys_from_notification(_notification(key, event="ObjectRemoved:Delete")) == []


def test_asset_events_give_each_key_once_in_order():
    a, b = "stream/flights/2026/11/29/09/a", "stream/flights/2026/11/29/09/b"
    extras = [
        {"from_trigger": True, "payload": {"status": "success", "message_batch": [
            {"Body": json.dumps({"Event": "s3:TestEvent"})}, {"Body": _notification(a)}]}},
        {"from_trigger": True, "payload": {"message_batch": [{"Body": _notification(b, a)}]}},
        None,
    ]
    assert events.keys_from_asset_events(extras) == [a, b]


@pytest.mark.parametrize("change, reason", [
    ({"distance": "1400"}, "wrong type: distance"),
    ({"flight": True}, "wrong type: flight"),
    ({"carrier": None}, "missing field(s): carrier"),
    ({"month": 13}, "out of range"),
    ({"time_hour": "2013-01-02 05:00:00"}, "malformed time_hour"),
    ({"event_time": "2013-01-02T05:16:00"}, "inconsistent: event_time"),
    ({"event_id": "UA-1545-EWR-2013-01-02T05:16"}, "inconsistent: event_id"),
    ({"day": 31, "month": 2}, "invalid date"),
])
def test_validation_names_the_reason(change, reason):
    assert events.validate_event(E1) is None
    assert events.validate_event({**E1, "tailnum": None}) is None
    assert reason in events.validate_event({**E1, **change})


def test_bad_lines_are_rejected_and_the_batch_goes_on():
    missing = {k: v for k, v in E2.items() if k != "dest"}
    parsed = events.parse_object(body(E1, "{not json", missing, "", "[1, 2]", E1, E3))
    assert [e["event_id"] for e in parsed.events] == [E1["event_id"], E3["event_id"]]
    reasons = {r.line: r.reason for r in parsed.rejected}
    assert reasons[2].startswith("malformed JSON")
    assert reasons[3] == "missing field(s): dest"
    assert reasons[5].startswith("not a JSON object")
    assert reasons[6] == "duplicate event_id within the object"
    assert len(parsed.rejected) == 4


def _batch_partition(dt: str = "2013-01-01") -> pd.DataFrame:
    """A published feature partition: UA at EWR (late, then on time), B6 at JFK (on time,
    cancelled), with the weather of their hours."""
    hour = pd.Timestamp(f"{dt}T00:00:00Z")
    rows = [
        {"flight_id": f"UA-1-EWR-{dt}", "origin": "EWR", "dest": "IAH", "carrier": "UA", "route": "EWR-IAH",
         "time_hour": hour + pd.Timedelta(hours=5), "temp": 39.0, "label": 1},
        {"flight_id": f"UA-2-EWR-{dt}", "origin": "EWR", "dest": "IAH", "carrier": "UA", "route": "EWR-IAH",
         "time_hour": hour + pd.Timedelta(hours=20), "temp": 30.0, "label": 0},
        {"flight_id": f"B6-2-JFK-{dt}", "origin": "JFK", "dest": "BQN", "carrier": "B6", "route": "JFK-BQN",
         "time_hour": hour + pd.Timedelta(hours=6), "temp": 41.0, "label": 0},
        {"flight_id": f"B6-3-JFK-{dt}", "origin": "JFK", "dest": "BQN", "carrier": "B6", "route": "JFK-BQN",
         "time_hour": hour + pd.Timedelta(hours=22), "temp": None, "label": None},
    ]
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("Int64")
    frame["dt"] = dt
    for col in ("dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"):
        frame[col] = [1.0, 1.0, 1.0, None]
    return frame


def _schedule(records) -> pd.DataFrame:
    """What schedule_frame returns, built by hand for the pure join test."""
    return pd.DataFrame({
        "flight_id": [e["event_id"] for e in records], "dt": [events.event_day(e) for e in records],
        "time_hour": pd.to_datetime([e["time_hour"] for e in records]).tz_localize(None),
        "origin": [e["origin"] for e in records], "dest": [e["dest"] for e in records],
        "carrier": [e["carrier"] for e in records],
        "route": [f"{e['origin']}-{e['dest']}" for e in records],
        "distance": [e["distance"] for e in records], "sched_dep_hour": [e["hour"] for e in records],
        "sched_dep_weekday": 3, "month": 1,
    })


def test_lookups_use_only_what_is_known_before_the_events_day():
    older = _batch_partition("2012-12-20")  # 13 days before: inside 28d, outside 7d
    history = pd.concat([older, _batch_partition("2013-01-01"),
                         _batch_partition("2013-01-02").assign(label=1, temp=99.0)])  # the day itself
    out = lookups.join_batch_lookups(_schedule([E1, E2, E3]), history, "2013-01-01", date(2013, 1, 2))
    ua, aa, b6 = (out.set_index("carrier").loc[c] for c in ("UA", "AA", "B6"))
    # the batch job's windows: days D-7..D-1 and D-28..D-1, every scheduled flight counted,
    # on-time share of the arrived ones; the events' own day is never read
    assert ua["carrier_flights_7d"] == 2 and ua["carrier_ontime_7d"] == pytest.approx(0.5)
    assert ua["route_flights_28d"] == 4 and ua["route_ontime_28d"] == pytest.approx(0.5)
    assert b6["carrier_flights_7d"] == 2 and b6["carrier_ontime_7d"] == pytest.approx(1.0)
    assert b6["origin_flights_28d"] == 4
    # weather: the latest hour before the day that carries any (JFK 22:00 has none: 06:00 it is)
    assert ua["temp"] == 30.0 and b6["temp"] == 41.0
    # AA never flew: unknown rates, not zero; JFK's origin rates and weather still apply
    assert np.isnan(aa["carrier_ontime_7d"]) and np.isnan(aa["route_flights_7d"])
    assert aa["origin_ontime_7d"] == pytest.approx(1.0) and aa["temp"] == 41.0
    assert set(FEATURES) <= set(out.columns) and (out["features_dt"] == "2013-01-01").all()
    assert all(out[c].dtype == "float64" for c in FEATURES[4:])

    none = lookups.join_batch_lookups(_schedule([E1]), None, None, date(2013, 1, 2))
    looked_up = list(FEATURES[FEATURES.index("temp"):])
    assert none[looked_up].isna().all().all() and none.loc[0, "features_dt"] is None
    assert none.loc[0, "distance"] == 1400.0


def test_history_days_are_strictly_before_the_event_day_and_within_the_lookback():
    days = [date(2012, 12, 1), date(2012, 12, 20), date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)]
    assert lookups.history_days(days, date(2013, 1, 2), 28) == [date(2012, 12, 20), date(2013, 1, 1)]
    assert lookups.history_days(days, date(2012, 12, 1), 28) == []


# --------------------------------------------------------------------------- S3 (moto) + Spark


@pytest.fixture(scope="module")
def spark():
    session = lookups.local_spark()
    yield session
    session.stop()


def test_schedule_features_come_from_the_batch_transform(spark):
    out = lookups.schedule_frame([E1, E3], spark)
    assert list(out["flight_id"]) == ["UA-1545-EWR-201301020515", "B6-725-JFK-201301020600"]
    assert list(out["dt"]) == ["2013-01-02", "2013-01-02"]
    assert list(out["sched_dep_weekday"]) == [3, 3]  # 2013-01-02 was a Wednesday
    assert list(out["route"]) == ["EWR-IAH", "JFK-BQN"]
    assert out.loc[0, "time_hour"] == pd.Timestamp("2013-01-02 05:00:00")


class DistanceModel:
    """Stand-in champion: probability grows with distance (deterministic, no fitting)."""

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        assert list(x.columns) == list(FEATURES)
        p = np.clip(x["distance"].to_numpy(dtype=float) / 2000.0, 0, 1)
        return np.column_stack([1 - p, p])


SCORER = ledger.Scorer(model=DistanceModel(), model_name=MODEL, model_version="3", run_id="run-3")


def _publish_batch(client: Any) -> None:
    # the day before the events and, as after a replay, the events' own day (never read)
    for dt in ("2013-01-01", "2013-01-02"):
        partition = catalog.features_partition(FEATURE_SET, dt)
        buf = io.BytesIO()
        _batch_partition(dt).to_parquet(buf, index=False)
        key = catalog.build_prefix(partition, "b1") + catalog.part_name(0)
        client.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
        catalog.publish_partition(client, BUCKET, partition, {"dt": dt, "build": "b1", "parts": [key]})


@pytest.fixture
def s3(moto_s3: Any) -> Iterator[Any]:
    moto_s3.create_bucket(Bucket=BUCKET)
    _publish_batch(moto_s3)
    yield moto_s3


def put(s3, name: str, payload: bytes) -> str:
    key = f"stream/flights/2026/11/29/09/contrail-lake-flight-events-1-{name}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=payload)
    return key


def run(s3, keys, spark) -> dict:
    return ledger.process_keys(s3, BUCKET, keys, scorer=SCORER, processed_time=PROCESSED, spark=spark,
                               lookups=lookups.BatchFeatures(s3, BUCKET, FEATURE_SET))


def predictions(s3) -> pd.DataFrame:
    keys = sorted(o.key for o in lake.list_objects(s3, BUCKET, f"predictions/{MODEL}/stream/"))
    return pd.concat([pd.read_parquet(io.BytesIO(lake.read_bytes(s3, BUCKET, k))) for k in keys],
                     ignore_index=True)


def test_an_object_is_scored_once_across_reruns_and_duplicate_notifications(s3, spark):
    a = put(s3, "a", body(E1, E2))
    first = run(s3, [a, a], spark)  # the same notification twice in one batch
    assert (first["objects"], first["already_processed"], first["scored"]) == (1, 1, 2)
    again = run(s3, [a], spark)  # a re-run, a late duplicate notification, the sweep
    assert (again["objects"], again["already_processed"]) == (0, 1)
    assert ledger.unledgered(s3, BUCKET) == []

    preds = predictions(s3)
    assert sorted(preds["event_id"]) == sorted([E1["event_id"], E2["event_id"]])
    row = preds.set_index("event_id").loc[E1["event_id"]]
    assert row["probability"] == pytest.approx(0.7) and row["label"] == 1
    assert (row["model_version"], row["features_dt"], row["dt"]) == ("3", "2013-01-01", "2013-01-02")
    assert (row["event_time"], row["processed_time"], row["object_key"]) == (E1["event_time"], PROCESSED, a)
    entry = lake.read_json(s3, BUCKET, catalog.ledger_key(a))
    assert entry["scored"] == 2 and entry["days"] == ["2013-01-02"] and entry["rejected"] == {}


def test_a_task_killed_before_its_ledger_entry_reprocesses_without_duplicates(s3, spark, monkeypatch):
    a = put(s3, "a", body(E1, E2))
    real_put_immutable = lake.put_immutable

    def killed(client, bucket, key, data, **extra):
        if key.startswith(catalog.OBJECTS_LEDGER):
            raise KeyboardInterrupt("worker killed between outputs and ledger")
        return real_put_immutable(client, bucket, key, data, **extra)

    monkeypatch.setattr(lake, "put_immutable", killed)
    with pytest.raises(KeyboardInterrupt):
        run(s3, [a], spark)
    assert not lake.exists(s3, BUCKET, catalog.ledger_key(a))
    assert len(predictions(s3)) == 2  # outputs were written, the ledger was not
    assert ledger.unledgered(s3, BUCKET) == [a]  # so the sweep (or a retry) takes it again

    monkeypatch.setattr(lake, "put_immutable", real_put_immutable)
    retry = run(s3, ledger.unledgered(s3, BUCKET), spark)
    # its own claims are recognised: nothing is dead-lettered as a duplicate of itself
    assert (retry["objects"], retry["scored"], retry["rejected"]) == (1, 2, {})
    preds = predictions(s3)
    assert len(preds) == 2 and preds["event_id"].is_unique
    assert not lake.exists(s3, BUCKET, catalog.deadletter_key(a))


def test_duplicates_across_objects_and_malformed_records_are_dead_lettered(s3, spark):
    a = put(s3, "a", body(E1, E2))
    b = put(s3, "b", body(E2, "{broken", {**E3, "distance": "far"}, E3))  # E2 delivered twice
    summary = run(s3, [a, b], spark)
    assert summary["scored"] == 3
    assert summary["rejected"] == {"duplicate event_id": 1, "malformed JSON": 1, "wrong type": 1}
    preds = predictions(s3)
    assert sorted(preds["event_id"]) == sorted(e["event_id"] for e in (E1, E2, E3))
    assert preds.set_index("event_id").loc[E2["event_id"], "object_key"] == a

    dead = lake.read_json(s3, BUCKET, catalog.deadletter_key(b))
    reasons = sorted(r["reason"] for r in dead["records"])
    assert reasons[0] == f"duplicate event_id: already delivered in {a}"
    assert reasons[1].startswith("malformed JSON") and reasons[2].startswith("wrong type: distance")
    assert lake.read_json(s3, BUCKET, catalog.ledger_key(b))["rejected"] == {
        "duplicate event_id": 1, "malformed JSON": 1, "wrong type": 1}


def test_claims_go_to_the_first_object_in_delivery_order_and_outlive_the_batch(s3):
    from concurrent.futures import ThreadPoolExecutor

    a, b, c = "stream/flights/a", "stream/flights/b", "stream/flights/c"
    with ThreadPoolExecutor(8) as pool:  # parallel PUTs: ownership must not depend on timing
        owners = ledger.claim_events(s3, BUCKET, [(b, [E2, E3]), (a, [E1, E2])], pool=pool)
    assert owners == {E2["event_id"]: b, E3["event_id"]: b, E1["event_id"]: a}
    # a later batch (or a re-run) cannot take them over; a re-claim by the owner is a no-op
    assert ledger.claim_events(s3, BUCKET, [(c, [E1]), (b, [E3])]) == {E1["event_id"]: a, E3["event_id"]: b}

    mine, duplicates = ledger.split_by_owner(a, [E1, E2], owners)
    assert [e["event_id"] for e in mine] == [E1["event_id"]]
    assert [d.reason for d in duplicates] == [f"duplicate event_id: already delivered in {b}"]


def test_arrival_prefixes_cover_each_utc_hour_of_the_window():
    since = datetime(2026, 11, 29, 23, 59, 30, tzinfo=timezone.utc)
    assert catalog.arrival_prefixes(since, since + timedelta(minutes=1)) == [
        "stream/flights/2026/11/29/23/", "stream/flights/2026/11/30/00/"]
    assert catalog.arrival_prefixes(since, since) == ["stream/flights/2026/11/29/23/"]


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_drain_takes_objects_landing_during_the_run_until_idle(s3):
    first = put(s3, "first", body(E1))
    started = s3.head_object(Bucket=BUCKET, Key=first)["LastModified"]
    # Firehose names objects by arrival hour; moto stamps LastModified with the real clock
    arrival = f"stream/flights/{started:%Y/%m/%d/%H}/"

    def land(name: str, *events) -> str:
        key = arrival + name
        s3.put_object(Bucket=BUCKET, Key=key, Body=body(*events))
        return key

    late = land("late", E2)
    clock = FakeClock(started)
    batches: list[list[str]] = []
    policy = ledger.Drain(idle_s=6, max_s=60, poll_s=2)

    def process(keys: list[str]) -> dict:
        batches.append(keys)
        if len(batches) == 1:  # another object lands while the first drained batch runs
            land("later", E3)
        clock.sleep(1)
        return {"objects": len(keys), "already_processed": 0, "scored": len(keys), "rejected": {},
                "days": ["2013-01-02"], "model_version": "3"}

    summary = ledger.drain(s3, BUCKET, handled={first}, started=started, policy=policy, process=process,
                           clock=clock, sleep=clock.sleep)

    assert batches == [[late], [arrival + "later"]]
    assert (summary["objects"], summary["scored"]) == (2, 2)
    # it stopped after idle_s without a new object: 1 s processing + polls of 2 s up to 6 s idle
    assert (clock.now - started).total_seconds() == pytest.approx(1 + 1 + 6)


def test_an_unreachable_spark_connect_server_is_named_at_once():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(ConnectionError, match=f"sc://127.0.0.1:{port} is not reachable"):
            lookups.stream_spark(f"sc://127.0.0.1:{port}")


def test_drain_is_off_at_zero_and_bounded_by_max_s(s3):
    started = datetime.now(timezone.utc)
    never = lambda keys: pytest.fail("must not process")  # noqa: E731
    off = ledger.drain(s3, BUCKET, handled=set(), started=started, policy=ledger.Drain(idle_s=0),
                       process=never, clock=lambda: started, sleep=lambda s: None)
    assert off is None
    clock = FakeClock(started)
    capped = ledger.drain(s3, BUCKET, handled=set(), started=started,
                          policy=ledger.Drain(idle_s=1000, max_s=10, poll_s=2),
                          process=never, clock=clock, sleep=clock.sleep)
    assert capped is None and (clock.now - started).total_seconds() == 10


def test_unprocessed_is_what_the_ledger_lacks(s3, spark):
    a = put(s3, "a", body(E1))
    b = put(s3, "b", body(E2))
    run(s3, [a], spark)
    assert ledger.unprocessed(s3, BUCKET, [a, b, b]) == [b]


def test_sweep_leaves_fresh_objects_to_the_event_path(s3):
    a = put(s3, "a", body(E1))
    head = s3.head_object(Bucket=BUCKET, Key=a)["LastModified"]
    assert ledger.unledgered(s3, BUCKET, modified_before=head) == []
    assert ledger.unledgered(s3, BUCKET) == [a]


def test_compaction_is_idempotent_and_leaves_originals_untouched(s3, spark):
    next_day = make_event(carrier="UA", flight=2, when=datetime(2013, 1, 3, 6, 0))
    a = put(s3, "a", body(E3, E1))
    b = put(s3, "b", body(E2, E1, next_day))  # E1 again: a duplicate delivery
    run(s3, [a, b], spark)
    etags = {k: s3.head_object(Bucket=BUCKET, Key=k)["ETag"] for k in (a, b)}

    first = compaction.compact_day(s3, BUCKET, date(2013, 1, 2))
    assert (first["rows"], first["sources"], first["written"]) == (3, 2, True)
    assert first["key"].startswith(catalog.warm_prefix("2013-01-02") + "b=")
    published = catalog.published_one(s3, BUCKET, catalog.warm_prefix("2013-01-02"))
    assert published.parts == [first["key"]] and published.manifest["sources"] == [a, b]
    part = lake.read_bytes(s3, BUCKET, first["key"])
    frame = pd.read_parquet(io.BytesIO(part))
    assert list(frame["event_id"]) == [E1["event_id"], E2["event_id"], E3["event_id"]]  # by event_time
    assert list(frame.set_index("event_id")["object_key"]) == [a, b, a]

    second = compaction.compact_day(s3, BUCKET, "2013-01-02")
    assert second["written"] is False and second["sha256"] == first["sha256"]
    assert second["key"] == first["key"] and lake.read_bytes(s3, BUCKET, first["key"]) == part
    assert {k: s3.head_object(Bucket=BUCKET, Key=k)["ETag"] for k in (a, b)} == etags

    other = compaction.compact_day(s3, BUCKET, "2013-01-03")
    assert other["rows"] == 1 and other["sources"] == 1
    assert compaction.compact_day(s3, BUCKET, "2013-01-04") == {
        "dt": "2013-01-04", "rows": 0, "sources": 0, "key": None, "written": False}


# --------------------------------------------------------------------------- crash at every write

def _emptied(s3) -> None:
    lake.delete_keys(s3, BUCKET, [o.key for o in lake.list_objects(s3, BUCKET, "")])
    _publish_batch(s3)


def _per_object_predictions(s3, bucket) -> dict[str, Any]:
    preds = ledger.read_predictions(s3, bucket, MODEL)
    assert not preds["event_id"].duplicated().any(), "an event was predicted twice"
    return {key: sorted(group["event_id"]) for key, group in preds.groupby("object_key")}


def test_the_ledger_survives_a_crash_at_every_write(s3, spark):
    from faults import crash_at_every_write

    def fresh():
        _emptied(s3)
        keys = [put(s3, "a", body(E1, E2)), put(s3, "b", body(E3, E1, "not json"))]
        return s3, BUCKET, keys

    state: dict[str, Any] = {}

    def setup():
        client, bucket, state["keys"] = fresh()
        return client, bucket

    def step(client, bucket):
        return ledger.process_keys(client, bucket, state["keys"], scorer=SCORER, processed_time=PROCESSED,
                                   spark=spark, lookups=lookups.BatchFeatures(client, bucket, FEATURE_SET))

    # claims, predictions, day index, dead letter and ledger entries of two objects
    assert crash_at_every_write(setup, step, _per_object_predictions) >= 8


def test_compaction_survives_a_crash_at_every_write(s3, spark):
    from faults import crash_at_every_write

    def setup():
        _emptied(s3)
        keys = [put(s3, "a", body(E3, E1)), put(s3, "b", body(E2, E1))]
        run(s3, keys, spark)
        return s3, BUCKET

    def view(client, bucket):
        part = catalog.published_one(client, bucket, catalog.warm_prefix("2013-01-02"))
        return {"2013-01-02": part and (part.manifest["build"], part.parts)}

    # the part, the manifest, then _SUCCESS
    assert crash_at_every_write(setup, lambda c, b: compaction.compact_day(c, b, "2013-01-02"), view) == 3
