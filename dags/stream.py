"""
### Stream — micro-batch scoring of Firehose objects or Kinesis records

DAGs: `stream_scoring`, `stream_sweep`, `stream_kinesis`, `compaction`.

**`stream_scoring`** is event-driven: an `AssetWatcher` in the triggerer long-polls the stream
SQS queue (S3 `ObjectCreated` notifications for `stream/`), and each notification becomes an
asset event that schedules a run. The run scores the Firehose objects those events name with
the `@champion` model and writes `predictions/<model>/stream/dt=…/<object-sha>.parquet`;
malformed, inconsistent or duplicate records go to `deadletter/stream/invalid/flights/`.

**`stream_sweep`** runs every 15 minutes as the safety net (a lost notification, a run that
failed for good, objects that arrived before a champion existed): it processes every object
older than two minutes that is not in the ledger. On AWS the queue URL is the stack's
(`CONTRAIL_STREAM_QUEUE_URL`, written by `contrail bootstrap --env-file`); without it
`stream_scoring` has no watcher and the sweep alone keeps the stream scored.

Both call the same task. Exactly once: an object is done only when its entry exists in the
append-only ledger `ledger/stream/flights/objects/`, written last; outputs before it have
deterministic keys, and each event is claimed once across objects.

**`stream_kinesis`** is the other source (`CONTRAIL_STREAM_SOURCE=kinesis`, settings.py): every
minute a short micro-batch task reads each shard of the Kinesis Data Stream after its checkpoint
(kept in the lake, `ledger/stream/flights/kinesis/`), scores the records with the same code and
keeps going until the stream is idle. With that source the Firehose DAGs are unscheduled (Firehose
still lands every event in `stream/` for the warm tier); with the default `firehose` source
`stream_kinesis` is unscheduled. Either way look-ups come from the online store (DynamoDB).

**`compaction`** (daily over 2013, paused at creation) merges one day's stream events into
`warm/stream/flights/dt=…/part-00000.parquet`; re-running gives the same bytes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

from contrail import assets
from contrail.dag_defaults import DEFAULT_ARGS, STREAM_PRIORITY, TAGS
from contrail.settings import load_settings
from contrail.stream.events import queue_url

log = logging.getLogger(__name__)
settings = load_settings()

try:
    stream_queue_url: str | None = queue_url(settings)
except ValueError as missing:
    # On AWS the URL comes from the stack (`contrail bootstrap --env-file`). Without it the DAGs
    # still load: no watcher, so stream_scoring waits and stream_sweep scores every 15 minutes.
    stream_queue_url = None
    log.warning("stream_scoring has no SQS watcher: %s", missing)

# One asset per Firehose prefix; its watcher turns each SQS message into an asset event.
stream_objects = Asset(
    name="stream_flights",
    uri=f"s3://{settings.bucket}/stream/flights/",
    group="stream",
    watchers=[AssetWatcher(
        name="stream_flights_sqs",
        trigger=MessageQueueTrigger(
            scheme="sqs",
            sqs_queue=stream_queue_url,
            aws_conn_id=settings.aws_conn_id,
            # long-poll 5 s, then re-poll after 1 s: freshness is the point of this path
            wait_time_seconds=5,
            waiter_delay=1,
            max_messages=10,
        ),
    )] if stream_queue_url and settings.stream_source == "firehose" else [],
)

with DAG(
    dag_id="stream_scoring",
    schedule=[stream_objects],
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    # events arriving during a run queue up and are taken together by the next one
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "priority_weight": STREAM_PRIORITY},
    tags=[*TAGS, "stream", "scoring"],
    doc_md=__doc__,
):

    @task(outlets=[assets.predictions()], retry_delay=timedelta(seconds=5))
    def score_objects(**context) -> dict:
        from contrail.stages.stream import process_from_context

        return process_from_context(context, mode="event")

    score_objects()


with DAG(
    dag_id="stream_sweep",
    schedule=timedelta(minutes=15) if settings.stream_source == "firehose" else None,
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "priority_weight": STREAM_PRIORITY},
    tags=[*TAGS, "stream", "scoring"],
    doc_md=__doc__,
):

    @task(outlets=[assets.predictions()])
    def score_objects(**context) -> dict:
        from contrail.stages.stream import process_from_context

        return process_from_context(context, mode="sweep")

    score_objects()


with DAG(
    dag_id="stream_kinesis",
    schedule=timedelta(minutes=1) if settings.stream_source == "kinesis" else None,
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "priority_weight": STREAM_PRIORITY},
    tags=[*TAGS, "stream", "scoring"],
    doc_md=__doc__,
):

    @task(outlets=[assets.predictions()])
    def consume_shards(**context) -> dict:
        from contrail.stages.stream import consume_kinesis_from_context

        return consume_kinesis_from_context(context)

    consume_shards()


with DAG(
    dag_id="compaction",
    schedule="@daily",
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    end_date=datetime(2013, 12, 31, tzinfo=timezone.utc),
    catchup=True,
    # a year of catch-up runs is a decision for a person, not a side effect of deploying
    is_paused_upon_creation=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "stream", "warm"],
    doc_md=__doc__,
):

    @task
    def compact_day(**context) -> dict:
        from contrail.stages.stream import compact_from_context

        return compact_from_context(context)

    compact_day()
