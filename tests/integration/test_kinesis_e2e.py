"""The hot tier through the real stack: the feature stage filled the online store when it
published; records put to the Kinesis Data Stream are scored by ``stream_kinesis`` (look-ups
from the store) exactly once, also when the producer re-sends; a stop/start of the stack keeps
every store item and the shard's position, and records put after the restart are taken from
the checkpoint on.

Needs a champion and published features: reuses what the batch e2e module left in the session,
else runs the batch pipeline first (``pipeline_run``).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from contrail import catalog, lake, online_store

from .test_pipeline_e2e import DAYS, pipeline_run  # noqa: F401 - the batch pipeline fixture
from .test_stream_e2e import TIMEOUT, _wait, batch_ready  # noqa: F401 - champion + features fixture

pytestmark = pytest.mark.e2e

# a day the batch has not built, and another window than the Firehose module's
FIRST = (datetime(2013, 1, 7, 6, 0), datetime(2013, 1, 7, 6, 30))
AFTER_RESTART = (datetime(2013, 1, 7, 6, 30), datetime(2013, 1, 7, 7, 0))


def _store_items(settings) -> list[dict]:
    dynamodb = lake.client("dynamodb", settings)
    items = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=settings.online_table):
        items += page["Items"]
    return sorted(items, key=lambda i: (i[online_store.ONLINE_ENTITY]["S"], i[online_store.ONLINE_ASOF]["S"]))


def _run_consumer(api, until) -> None:
    api.trigger("stream_kinesis", logical_date=None)
    _wait(until, "stream_kinesis to score the records", timeout=TIMEOUT)
    _wait(lambda: all(r["state"] in ("success", "skipped", "failed") for r in api.runs("stream_kinesis")),
          "the stream_kinesis run to end", timeout=TIMEOUT)
    assert not [r for r in api.runs("stream_kinesis") if r["state"] == "failed"]


def test_kinesis_records_are_scored_once_from_the_store_and_survive_a_restart(batch_ready):
    from contrail import nycflights
    from contrail.simulate import encode_event, kinesis_sink, schedule_events
    from contrail.stack import local
    from contrail.stack.api import AirflowClient
    from contrail.stack.local import wait_for_dags
    from contrail.stream import kinesis, ledger

    settings = batch_ready
    s3, bucket = lake.s3_client(settings), settings.bucket
    # the feature stage wrote the store when it published: as-of days after each built day
    items = _store_items(settings)
    markers = {i[online_store.ONLINE_ASOF]["S"] for i in items if i[online_store.ONLINE_ENTITY]["S"] == online_store.ONLINE_MARKER}
    assert {d.isoformat() for d in DAYS[1:]} <= markers, markers
    assert len(items) > 100

    api = AirflowClient.for_local(settings)
    wait_for_dags(settings, ["stream_kinesis"])
    api.set_paused("stream_kinesis", False)
    sink = kinesis_sink(lake.client("kinesis", settings), settings.kinesis_stream)
    flights = nycflights.load("flights")
    first = list(schedule_events(flights, *FIRST))
    sink([encode_event(e) for e in first + first[:2]])  # the producer re-sends two
    wanted = {e["event_id"] for e in first}

    def scored(ids):
        return lambda: ids <= set(ledger.read_predictions(s3, bucket, settings.model_name, "2013-01-07")["event_id"])

    _run_consumer(api, scored(wanted))
    preds = ledger.read_predictions(s3, bucket, settings.model_name, "2013-01-07")
    assert preds["event_id"].is_unique and set(preds["event_id"]) == wanted
    # look-ups from the store: the newest as-of day before the event's day (Jan 7 is not built)
    assert (preds["features_dt"] == max(DAYS).isoformat()).all()
    shard = kinesis.shards(lake.client("kinesis", settings), settings.kinesis_stream)[0]
    position = kinesis.checkpoint(s3, bucket, settings.kinesis_stream, shard)
    assert position is not None

    local.stop(settings)
    assert local.running(settings) == {}
    local.start(settings)
    assert _store_items(settings) == items  # no store item lost
    assert kinesis.checkpoint(s3, bucket, settings.kinesis_stream, shard) == position

    later = list(schedule_events(flights, *AFTER_RESTART))
    sink([encode_event(e) for e in later])
    wait_for_dags(settings, ["stream_kinesis"])
    _run_consumer(api, scored(wanted | {e["event_id"] for e in later}))
    preds = ledger.read_predictions(s3, bucket, settings.model_name, "2013-01-07")
    assert preds["event_id"].is_unique and set(preds["event_id"]) == wanted | {e["event_id"] for e in later}
    # the records before the restart were not read again: two batches in all
    batches = [o.key for o in lake.list_objects(s3, bucket, catalog.kinesis_batches_prefix(settings.kinesis_stream))
               if o.key.endswith(".jsonl")]
    assert len(batches) >= 2 and kinesis.checkpoint(s3, bucket, settings.kinesis_stream, shard) > position
