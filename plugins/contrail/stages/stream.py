"""The micro-batch stages' Airflow edge: score the stream objects a run is given (event) or finds
(sweep), draining what lands while it runs; compact a day into the warm tier."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any


from contrail.stream.compaction import compact_day
from contrail.stream.events import keys_from_asset_events
from contrail.stream.ledger import Drain, Scorer, drain, merge_summaries, process_keys, unledgered, unprocessed
from contrail.online_store import OnlineFeatures
from contrail.stream.lookups import stream_spark

if TYPE_CHECKING:  # pragma: no cover
    pass


log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- Airflow edge

SWEEP_GRACE = timedelta(minutes=2)


def _champion_scorer() -> Scorer | None:
    """The champion through the one safe load path, with the threshold stored with its version."""
    from contrail import registry
    from contrail.connections import mlflow_tracking_uri, settings

    cfg = settings()
    champion = registry.load_champion(cfg.model_name, tracking_uri=mlflow_tracking_uri())
    if champion is None:
        return None
    return Scorer(model=champion.model, model_name=cfg.model_name, model_version=champion.version,
                  run_id=champion.run_id, threshold=champion.threshold)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _wall_clock() -> str:
    # processed_time measures freshness, so it is wall-clock on purpose (like an audit stamp)
    return _utcnow().isoformat(timespec="milliseconds")


def process_from_context(context: dict, *, mode: str) -> dict[str, Any]:
    """The task both stream DAGs run. ``mode="event"``: the objects named by the triggering SQS
    asset events; ``mode="sweep"``: every object not yet in the ledger (older than a grace period)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail import assets
    from contrail.connections import aws_client, s3, settings

    started = _utcnow()
    cfg, client = settings(), s3()
    if mode == "event":
        extras = [ev.extra for events in context["triggering_asset_events"].values() for ev in events]
        keys = keys_from_asset_events(extras)
    elif mode == "sweep":
        end = context.get("data_interval_end") or context["dag_run"].run_after
        keys = unledgered(client, cfg.bucket, modified_before=end - SWEEP_GRACE)
    else:
        raise ValueError(f"mode must be 'event' or 'sweep', got {mode!r}")
    log.info("%s: %d object(s) to consider", mode, len(keys))
    if not keys:
        raise AirflowSkipException("no stream object to process")
    if mode == "event" and not unprocessed(client, cfg.bucket, keys):
        # typical after a draining run: its objects' notifications start this one
        raise AirflowSkipException(f"all {len(keys)} object(s) already processed")
    # the session comes up (a Connect handshake, or a JVM start without a server) while
    # MLflow is imported and the champion loads
    with ThreadPoolExecutor(1, thread_name_prefix="contrail-spark-start") as pool:
        session = pool.submit(stream_spark, cfg.spark_remote)
        try:
            scorer = _champion_scorer()
            if scorer is None:
                # nothing is ledgered: the sweep scores these objects once a champion exists
                raise AirflowSkipException(f"no champion registered for {cfg.model_name} yet")
            # the hot tier: one BatchGetItem per micro-batch, no S3 read of feature partitions
            online = OnlineFeatures(aws_client("dynamodb"), cfg.online_table)

            def process(some: list[str]) -> dict[str, Any]:
                return process_keys(client, cfg.bucket, some, scorer=scorer, lookups=online,
                                    processed_time=_wall_clock, spark=session.result())

            summary = process(keys)
            if mode == "event":
                drained = drain(client, cfg.bucket, handled=set(keys), started=started,
                                policy=Drain(idle_s=cfg.stream_drain_idle_s), process=process,
                                clock=_utcnow, sleep=time.sleep)
                if drained is not None:
                    log.info("drained %d more object(s) while running", drained["objects"])
                    summary = merge_summaries(summary, drained)
        finally:
            if session.exception() is None:
                session.result().stop()  # a Connect session is released on the server
    summary["mode"] = mode
    context["outlet_events"][assets.predictions()].extra = {"model_name": cfg.model_name, "stream": summary}
    return summary


def consume_kinesis_from_context(context: dict) -> dict[str, Any]:
    """The Kinesis source's task: micro-batches from every shard after its checkpoint, scored
    like Firehose objects, until no record came for ``stream_drain_idle_s`` (or ``Drain.max_s``)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail import assets
    from contrail.connections import aws_client, s3, settings
    from contrail.stream import kinesis

    cfg, client, stream = settings(), s3(), aws_client("kinesis")
    policy = Drain(idle_s=cfg.stream_drain_idle_s)
    with ThreadPoolExecutor(1, thread_name_prefix="contrail-spark-start") as pool:
        session = pool.submit(stream_spark, cfg.spark_remote)
        try:
            scorer = _champion_scorer()
            if scorer is None:
                raise AirflowSkipException(f"no champion registered for {cfg.model_name} yet")
            online = OnlineFeatures(aws_client("dynamodb"), cfg.online_table)

            def process(keys: list[str]) -> dict[str, Any]:
                return process_keys(client, cfg.bucket, keys, scorer=scorer, lookups=online,
                                    processed_time=_wall_clock, spark=session.result())

            summary: dict[str, Any] | None = None
            started = last_new = time.monotonic()
            while True:
                got = kinesis.consume(client, cfg.bucket, stream, cfg.kinesis_stream, process=process)
                now = time.monotonic()
                if got is not None:
                    got.pop("kinesis")
                    summary = got if summary is None else merge_summaries(summary, got)
                    last_new = now
                elif now - last_new >= policy.idle_s or now - started >= policy.max_s:
                    break
                else:
                    time.sleep(policy.poll_s)
        finally:
            if session.exception() is None:
                session.result().stop()
    if summary is None:
        raise AirflowSkipException(f"no new record on {cfg.kinesis_stream}")
    summary["mode"] = "kinesis"
    context["outlet_events"][assets.predictions()].extra = {"model_name": cfg.model_name, "stream": summary}
    return summary


def compact_from_context(context: dict) -> dict[str, Any]:
    from contrail.connections import s3, settings

    day = context["data_interval_start"].date()
    return compact_day(s3(), settings().bucket, day)
