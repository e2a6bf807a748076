"""The online feature store (hot tier) on an in-process moto DynamoDB + S3, over real days.

Feature partitions of 2013-01-01 .. 2013-01-10 are built by the batch transform from the real
data and published; the store is refreshed from them; real schedule events of the following
days are looked up through it and through the S3 partitions, which must agree exactly. A
micro-batch through the store reads no feature partition from S3; writing later as-of days
(or rebuilding a later partition) changes no earlier look-up.
"""

from __future__ import annotations

import io
import math
from datetime import date, datetime, timedelta
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from contrail import catalog, nycflights, online_store, scoring
from contrail.simulate import schedule_events
from contrail.stream import ledger, lookups
from contrail.training import FEATURES

BUCKET = "contrail-test"
TABLE = "contrail-test-online-features"
FEATURE_SET = "flights_v1"
BUILT = [date(2013, 1, 1) + timedelta(days=i) for i in range(10)]  # Jan 1 .. Jan 10
LOOKED_UP = [*FEATURES[FEATURES.index("temp"):], "features_dt"]


# --------------------------------------------------------------------------- pure

def test_items_give_back_the_lookup_frames_exactly():
    trailing = {"carrier": pd.DataFrame({"carrier": ["UA", "AA"], "carrier_ontime_7d": [0.1 + 0.2, np.nan],
                                         "carrier_flights_7d": [3.0, 0.0]})}
    weather = pd.DataFrame({"origin": ["EWR"], "weather_hour": [pd.Timestamp("2013-01-01 23:00")],
                            "temp": [1e-05], "dewp": [np.nan]})
    asof = online_store.AsOf(date(2013, 1, 2), ("2013-01-01@b1",))
    items, marker = online_store.asof_items({**trailing, "origin": pd.DataFrame({"origin": ["EWR"]})},
                                            weather, asof, ttl_days=10)
    assert marker["features_dt"] == {"S": "2013-01-01"} and marker["token"] == {"S": asof.token}
    assert all(i["token"] == marker["token"] for i in items)
    assert {i["entity"]["S"] for i in items} == {"carrier#UA", "carrier#AA", "origin#EWR"}
    assert marker["expires_at"] == {"N": "1357948800"}  # the as-of day + 10 days: 2013-01-12T00:00Z
    back, back_weather = online_store.frames_from_items(
        items, {"carrier": ["carrier_ontime_7d", "carrier_flights_7d"], "origin": []}, ["temp", "dewp"])
    pd.testing.assert_frame_equal(back["carrier"].sort_values("carrier").reset_index(drop=True),
                                  trailing["carrier"].sort_values("carrier").reset_index(drop=True))
    assert back_weather.loc[0, "temp"] == 1e-05 and math.isnan(back_weather.loc[0, "dewp"])


def test_a_partition_changes_the_asof_days_whose_window_holds_it():
    published = [date(2013, 1, 1) + timedelta(days=i) for i in range(40)]
    # forward: the newest partition gives the next day's look-ups
    assert online_store.affected_asof_days(published, [published[-1]], 28) == [published[-1] + timedelta(days=1)]
    # a rebuilt old day: the 28 as-of days that read it
    old = online_store.affected_asof_days(published, [date(2013, 1, 5)], 28)
    assert old[0] == date(2013, 1, 6) and old[-1] == date(2013, 2, 2) and len(old) == 28
    assert online_store.affected_asof_days([], [date(2013, 1, 5)], 28) == []


# --------------------------------------------------------------------------- moto + Spark, real days

@pytest.fixture(scope="module")
def spark():
    session = lookups.local_spark()
    yield session
    session.stop()


@pytest.fixture(scope="module")
def real_partitions(spark) -> dict[date, pd.DataFrame]:
    """The batch transform's flights_v1 rows for BUILT, from the real flights and weather."""
    import os
    import tempfile

    from contrail_spark import transforms

    tmp = tempfile.mkdtemp(prefix="contrail-online-")
    frames = {}
    for dataset, schema in (("flights", transforms.FLIGHTS_SCHEMA), ("weather", transforms.WEATHER_SCHEMA)):
        rows = pd.concat([nycflights.day(dataset, d) for d in BUILT], ignore_index=True)
        path = os.path.join(tmp, f"{dataset}.csv")
        rows.to_csv(path, index=False, na_rep="NA")
        frames[dataset] = spark.read.csv(path, header=True, schema=schema, nullValue="NA")
    out = transforms.build_flights_features(frames["flights"], frames["weather"], targets=BUILT).toPandas()
    return {d: out[out["dt"] == d.isoformat()].reset_index(drop=True) for d in BUILT}


def publish(s3, dt: date, frame: pd.DataFrame, build: str) -> None:
    partition = catalog.features_partition(FEATURE_SET, dt)
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    key = catalog.build_prefix(partition, build) + catalog.part_name(0)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
    previous = catalog.published_one(s3, BUCKET, partition)
    catalog.publish_partition(s3, BUCKET, partition, {"dt": dt.isoformat(), "build": build, "parts": [key]},
                              marked=previous is not None)


@pytest.fixture
def lake(moto_s3: Any, real_partitions) -> Iterator[tuple[Any, Any]]:
    import boto3

    moto_s3.create_bucket(Bucket=BUCKET)
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    online_store.ensure_table(dynamodb, TABLE)
    for dt in BUILT:
        publish(moto_s3, dt, real_partitions[dt], "b1")
    yield moto_s3, dynamodb


def refresh(s3, dynamodb, changed) -> dict[str, int]:
    return online_store.refresh(s3, dynamodb, BUCKET, table=TABLE, feature_set=FEATURE_SET,
                                changed=changed, ttl_days=45)


def real_events(first: datetime, last: datetime) -> list[dict]:
    return list(schedule_events(nycflights.load("flights"), first, last))


def looked_up(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("flight_id").reset_index(drop=True)[["flight_id", *LOOKED_UP]]


class RatesModel:
    """Stand-in champion whose probability moves with the looked-up columns (deterministic)."""

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        p = (1 - x["carrier_ontime_7d"].fillna(0.5)) * 0.5 + (x["route_flights_28d"].fillna(0) / 1000.0)
        p = np.clip(p + x["temp"].fillna(40.0) / 1000.0, 0, 1).to_numpy(dtype=float)
        return np.column_stack([1 - p, p])


def test_the_store_gives_the_s3_lookups_on_real_days(lake, spark):
    s3, dynamodb = lake
    summary = refresh(s3, dynamodb, BUILT)
    assert summary["asof_days"] == 10 and summary["items"] > 10 * 100  # as-of Jan 2 .. Jan 11
    # Jan 10 (its window is Jan 1..9) and Jan 11 (window Jan 1..10, the day after the newest)
    events = real_events(datetime(2013, 1, 10, 5), datetime(2013, 1, 11, 12))
    schedule = lookups.schedule_frame(events, spark)
    online = online_store.OnlineFeatures(dynamodb, TABLE)
    from_store = online.join(schedule)
    from_s3 = lookups.BatchFeatures(s3, BUCKET, FEATURE_SET).join(schedule)
    pd.testing.assert_frame_equal(looked_up(from_store), looked_up(from_s3))
    assert set(from_store["features_dt"]) == {"2013-01-09", "2013-01-10"}
    assert from_store["carrier_ontime_28d"].notna().mean() > 0.99 and from_store["temp"].notna().mean() > 0.99
    # the predictions too
    model = RatesModel()
    a = scoring.score(model, from_store, model_name="m", model_version="1", run_id="r", threshold=0.5)
    b = scoring.score(model, from_s3, model_name="m", model_version="1", run_id="r", threshold=0.5)
    pd.testing.assert_frame_equal(a.sort_values("flight_id").reset_index(drop=True),
                                  b.sort_values("flight_id").reset_index(drop=True))
    # one BatchGetItem round per micro-batch, chunked to its 100-key limit
    entities = sum(len(online._entities(rows)) + 1 for _, rows in schedule.groupby("dt"))
    assert online.calls == math.ceil(entities / online_store.KEY_BATCH)


def test_a_micro_batch_reads_no_feature_partition_from_s3(lake, spark):
    s3, dynamodb = lake
    refresh(s3, dynamodb, BUILT)
    from contrail.simulate import encode_event

    body = b"".join(encode_event(e) for e in real_events(datetime(2013, 1, 11, 6), datetime(2013, 1, 11, 7)))
    key = "stream/flights/2026/11/29/09/contrail-lake-flight-events-1-a"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    reads: list[str] = []
    s3.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: reads.append(params["Key"]))
    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", lambda params, **_: reads.append(params.get("Prefix", "")))
    online = online_store.OnlineFeatures(dynamodb, TABLE)
    scorer = ledger.Scorer(model=RatesModel(), model_name="m", model_version="1", run_id="r", threshold=0.5)
    summary = ledger.process_keys(s3, BUCKET, [key], scorer=scorer, lookups=online,
                                  processed_time="2026-11-29T09:00:00.000+00:00", spark=spark)
    assert summary["scored"] > 20
    assert reads and not [k for k in reads if k.startswith(catalog.features_zone(FEATURE_SET))]
    assert online.calls == 1  # one hour of one day: under 100 keys


def test_later_asof_days_change_no_earlier_lookup(lake, spark, real_partitions):
    """Point in time: what a look-up of day D returns was known before D, whatever comes later."""
    s3, dynamodb = lake
    early = BUILT[:6]  # Jan 1 .. 6 published so far (the others are withdrawn below)
    for dt in BUILT[6:]:
        s3.delete_object(Bucket=BUCKET, Key=catalog.features_partition(FEATURE_SET, dt) + catalog.SUCCESS)
    refresh(s3, dynamodb, early)
    schedule = lookups.schedule_frame(real_events(datetime(2013, 1, 5), datetime(2013, 1, 7, 12)), spark)
    before = looked_up(online_store.OnlineFeatures(dynamodb, TABLE).join(schedule))
    assert set(before["features_dt"]) == {"2013-01-04", "2013-01-05", "2013-01-06"}

    # later days arrive, one of them twice with different outcomes: as-of Jan 8 .. 11 appear
    for dt in BUILT[6:]:
        publish(s3, dt, real_partitions[dt], "b2")
    flipped = real_partitions[BUILT[-1]].assign(label=lambda f: 1 - f["label"], temp=99.0)
    publish(s3, BUILT[-1], flipped, "b3")
    summary = refresh(s3, dynamodb, BUILT[6:])
    assert summary["asof_days"] == 4
    after = looked_up(online_store.OnlineFeatures(dynamodb, TABLE).join(schedule))
    pd.testing.assert_frame_equal(after, before)
    # and the later day itself sees the flipped outcomes, from the store as from S3
    later = lookups.schedule_frame(real_events(datetime(2013, 1, 11, 6), datetime(2013, 1, 11, 8)), spark)
    pd.testing.assert_frame_equal(looked_up(online_store.OnlineFeatures(dynamodb, TABLE).join(later)),
                                  looked_up(lookups.BatchFeatures(s3, BUCKET, FEATURE_SET).join(later)))


def test_a_rebuild_rewrites_exactly_the_asof_days_that_read_it(lake, spark, real_partitions):
    s3, dynamodb = lake
    refresh(s3, dynamodb, BUILT)
    assert refresh(s3, dynamodb, BUILT) == {"asof_days": 0, "unchanged": 10, "items": 0}  # a re-run: nothing
    tokens = {d: online_store._marker(dynamodb, TABLE, d)["token"]["S"] for d in BUILT[1:]}
    rebuilt = BUILT[6]  # Jan 7, with other outcomes: as-of Jan 8 .. 11 change, Jan 2 .. 7 do not
    publish(s3, rebuilt, real_partitions[rebuilt].assign(label=1), "b9")
    assert refresh(s3, dynamodb, [rebuilt])["asof_days"] == 4
    now = {d: online_store._marker(dynamodb, TABLE, d)["token"]["S"] for d in BUILT[1:]}
    assert [d for d in BUILT[1:] if now[d] != tokens[d]] == BUILT[7:]
    schedule = lookups.schedule_frame(real_events(datetime(2013, 1, 8, 6), datetime(2013, 1, 8, 8)), spark)
    pd.testing.assert_frame_equal(looked_up(online_store.OnlineFeatures(dynamodb, TABLE).join(schedule)),
                                  looked_up(lookups.BatchFeatures(s3, BUCKET, FEATURE_SET).join(schedule)))


def test_when_the_batch_is_behind_the_newest_asof_day_serves(lake, spark):
    s3, dynamodb = lake
    refresh(s3, dynamodb, BUILT)
    # Jan 13: the newest as-of day is Jan 11 (Jan 11 and 12 not published yet)
    schedule = lookups.schedule_frame(real_events(datetime(2013, 1, 13, 6), datetime(2013, 1, 13, 7)), spark)
    online = online_store.OnlineFeatures(dynamodb, TABLE)
    out = online.join(schedule)
    assert set(out["features_dt"]) == {"2013-01-10"} and out["carrier_ontime_7d"].notna().all()
    assert online.calls == 3  # the miss, the newest marker before the day, its items
