"""The Kinesis source on in-process moto: the simulator puts real events to Firehose and the
Kinesis Data Stream; the consumer scores each record exactly once (re-runs, producer re-sends, a
crash before the checkpoint, records arriving meanwhile) with the Firehose path's code, giving
the Firehose path's predictions for the same events."""

from __future__ import annotations

import io
import math
from datetime import datetime
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from contrail import catalog, lake, nycflights, online_store
from contrail.simulate import encode_event, ensure_delivery_stream, kinesis_sink, replay_stream, schedule_events
from contrail.stack.hot_tier import ensure_kinesis_stream
from contrail.stream import kinesis, ledger, lookups

LAKE, FIREHOSE_LAKE = "contrail-kinesis", "contrail-firehose"
STREAM, DELIVERY, TABLE = "flight-events-live", "flight-events", "online-features"
MODEL = "flight_delay"


class DistanceModel:
    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        p = np.clip(x["distance"].to_numpy(dtype=float) / 3000.0, 0, 1)
        return np.column_stack([1 - p, p])


SCORER = ledger.Scorer(model=DistanceModel(), model_name=MODEL, model_version="1", run_id="r", threshold=0.5)


@pytest.fixture(scope="module")
def spark():
    session = lookups.local_spark()
    yield session
    session.stop()


@pytest.fixture
def aws(moto_s3: Any) -> Iterator[dict[str, Any]]:
    import boto3

    for bucket in (LAKE, FIREHOSE_LAKE):
        moto_s3.create_bucket(Bucket=bucket)
    clients = {"s3": moto_s3, "kinesis": boto3.client("kinesis", region_name="us-east-1"),
               "firehose": boto3.client("firehose", region_name="us-east-1"),
               "dynamodb": boto3.client("dynamodb", region_name="us-east-1")}
    ensure_kinesis_stream(clients["kinesis"], STREAM)
    ensure_delivery_stream(clients["firehose"], DELIVERY, f"arn:aws:s3:::{FIREHOSE_LAKE}",
                           "arn:aws:iam::123456789012:role/firehose")
    online_store.ensure_table(clients["dynamodb"], TABLE)
    yield clients


def events(start: datetime, end: datetime) -> list[dict]:
    return list(schedule_events(nycflights.load("flights"), start, end))


def consume(aws, spark, bucket: str = LAKE, **kw) -> dict | None:
    online = online_store.OnlineFeatures(aws["dynamodb"], TABLE)

    def process(keys: list[str]) -> dict:
        return ledger.process_keys(aws["s3"], bucket, keys, scorer=SCORER, lookups=online,
                                   processed_time="2026-12-02T01:00:00.000+00:00", spark=spark)

    return kinesis.consume(aws["s3"], bucket, aws["kinesis"], STREAM, process=process, **kw)


def scored(s3, bucket: str) -> pd.DataFrame:
    return ledger.read_predictions(s3, bucket, MODEL)


def test_kinesis_records_are_scored_once_like_firehose_objects(aws, spark):
    first = events(datetime(2013, 1, 11, 6), datetime(2013, 1, 11, 6, 30))
    stats = replay_stream(aws["firehose"], DELIVERY, datetime(2013, 1, 11, 6), datetime(2013, 1, 11, 6, 30),
                          math.inf, events=first, also=kinesis_sink(aws["kinesis"], STREAM))
    assert stats.events == len(first) > 20
    done = consume(aws, spark)
    assert done["scored"] == len(first) and done["objects"] == 1
    (shard,) = done["kinesis"]
    assert kinesis.checkpoint(aws["s3"], LAKE, STREAM, shard) == done["kinesis"][shard]["last"]
    assert consume(aws, spark) is None  # nothing new: no batch, no work

    # the same events through the Firehose path (its objects, its own lake): the same predictions
    keys = ledger.unledgered(aws["s3"], FIREHOSE_LAKE)
    assert keys
    ledger.process_keys(aws["s3"], FIREHOSE_LAKE, keys, scorer=SCORER, spark=spark,
                        lookups=online_store.OnlineFeatures(aws["dynamodb"], TABLE),
                        processed_time="2026-12-02T01:00:00.000+00:00")
    columns = ["event_id", "flight_id", "dt", "probability", "label", "model_version", "features_dt"]
    via_kinesis = scored(aws["s3"], LAKE).sort_values("event_id").reset_index(drop=True)[columns]
    via_firehose = scored(aws["s3"], FIREHOSE_LAKE).sort_values("event_id").reset_index(drop=True)[columns]
    pd.testing.assert_frame_equal(via_kinesis, via_firehose)

    # a producer re-sends three events with new ones: only the new ones are scored
    more = events(datetime(2013, 1, 11, 6, 30), datetime(2013, 1, 11, 7))
    kinesis_sink(aws["kinesis"], STREAM)([encode_event(e) for e in first[:3] + more])
    again = consume(aws, spark)
    assert again["scored"] == len(more) and again["rejected"] == {"duplicate event_id": 3}
    out = scored(aws["s3"], LAKE)
    assert len(out) == out["event_id"].nunique() == len(first) + len(more)


def test_a_crash_before_the_checkpoint_takes_the_same_batch_again(aws, spark, monkeypatch):
    sink = kinesis_sink(aws["kinesis"], STREAM)
    first = events(datetime(2013, 1, 11, 8), datetime(2013, 1, 11, 8, 20))
    sink([encode_event(e) for e in first])
    real_commit = kinesis.commit

    def crash(*args, **kwargs):
        raise RuntimeError("killed before the checkpoint")

    monkeypatch.setattr(kinesis, "commit", crash)
    with pytest.raises(RuntimeError, match="killed"):
        consume(aws, spark)
    monkeypatch.setattr(kinesis, "commit", real_commit)
    # records land meanwhile; the re-run still takes the crashed run's batch, then the new ones
    later = events(datetime(2013, 1, 11, 8, 20), datetime(2013, 1, 11, 8, 40))
    sink([encode_event(e) for e in later])
    rerun = consume(aws, spark)
    assert (rerun["objects"], rerun["already_processed"], rerun["scored"]) == (0, 1, 0)
    (shard, batch), = rerun["kinesis"].items()
    assert batch["records"] == len(first)
    tail = consume(aws, spark)
    assert tail["scored"] == len(later)
    out = scored(aws["s3"], LAKE)
    assert len(out) == out["event_id"].nunique() == len(first) + len(later)
    batches = [o.key for o in lake.list_objects(aws["s3"], LAKE, catalog.kinesis_batches_prefix(STREAM))
               if o.key.endswith(".jsonl")]
    assert len(batches) == 2


def test_a_batch_is_bounded_and_the_rest_waits_for_the_next(aws, spark):
    sink = kinesis_sink(aws["kinesis"], STREAM)
    batch = events(datetime(2013, 1, 11, 9), datetime(2013, 1, 11, 9, 30))
    sink([encode_event(e) for e in batch])
    first = consume(aws, spark, max_records=10)
    assert first["scored"] == 10
    rest = consume(aws, spark)
    assert rest["scored"] == len(batch) - 10
    body = io.BytesIO(lake.read_bytes(aws["s3"], LAKE, catalog.kinesis_batch_key(
        STREAM, next(iter(first["kinesis"])), first["kinesis"][next(iter(first["kinesis"]))]["first"])))
    assert len(body.getvalue().splitlines()) == 10
