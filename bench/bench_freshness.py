"""Stream freshness: time from ``PutRecordBatch`` to the prediction being visible in the lake
(``LastModified`` of its predictions file), p50 / p95 / max over a replay of whole simulated
days, for the event path (SQS notification → triggerer AssetWatcher → ``stream_scoring``)
and the sweep-only path (``stream_sweep`` alone, every ``--sweep-every`` seconds here instead
of every 15 minutes; the scheduled figure is derived from it).

Starts its own stack (own state dir and ports; a developer's stack is untouched), runs the
batch pipeline over three days for a champion and published features, then replays one day
per path through Firehose at ``--speedup`` x real time. Prints one figure per line.

    .venv/bin/python bench/bench_freshness.py [--speedup 240] [--sweep-every 60]
    # again on a kept state (CONTRAIL_KEEP_BENCH_STATE=1), another day, event path only:
    .venv/bin/python bench/bench_freshness.py --state-dir /tmp/contrail-bench-freshness-… \
        --paths event --event-day 2013-01-01
    # the second source: the same day put to the Kinesis Data Stream, read by stream_kinesis
    .venv/bin/python bench/bench_freshness.py --paths kinesis
    # the hot tier: micro-batch freshness with the online store vs the S3 look-ups in one run,
    # the store's size for a year, look-ups per second (a moto server on loopback, no stack)
    .venv/bin/python bench/bench_freshness.py --paths lookups [--lookup-day 2013-06-14]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone

BATCH_DAYS = [date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)]
EVENT_DAY, SWEEP_DAY = date(2013, 1, 3), date(2013, 1, 2)
SWEEP_SCHEDULE_S = 15 * 60


class TimedFirehose:
    """Firehose client wrapper recording when each event was put (wall clock, epoch seconds)."""

    def __init__(self, client):
        self.client = client
        self.put_at: dict[str, float] = {}

    def put_record_batch(self, **kwargs):
        sent = time.time()
        response = self.client.put_record_batch(**kwargs)
        for record in kwargs["Records"]:
            self.put_at.setdefault(json.loads(record["Data"])["event_id"], sent)
        return response


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class TimedSink:
    """A replay's second sink (the Kinesis Data Stream) recording when each event was put."""

    def __init__(self, sink):
        self.sink = sink
        self.put_at: dict[str, float] = {}

    def __call__(self, batch: list[bytes]) -> None:
        sent = time.time()
        self.sink(batch)
        for record in batch:
            self.put_at.setdefault(json.loads(record)["event_id"], sent)


def replay_and_wait(settings, day: date, speedup: float, *, on_tick=None, on_stall=None,
                    stall_s: float = 180, timeout: float = 3600,
                    also: TimedSink | None = None) -> dict[str, float]:
    """Replay ``day`` through Firehose, wait until every event is scored; event_id -> freshness (s).

    ``on_stall`` is called once if nothing new was scored for ``stall_s`` after the replay ended.
    With ``also`` (the Kinesis source) every batch is put there too, and freshness counts from
    that put.
    """
    import threading

    from contrail import lake, nycflights
    from contrail.stream import ledger
    from contrail.simulate import replay_stream, schedule_events

    s3 = lake.s3_client(settings)
    start = datetime.combine(day, datetime.min.time())
    end = start + timedelta(days=1)
    events = list(schedule_events(nycflights.load("flights"), start, end))
    firehose = TimedFirehose(lake.client("firehose", settings))
    producer = threading.Thread(target=replay_stream, daemon=True, kwargs=dict(
        firehose=firehose, stream_name=settings.firehose_stream, start=start, end=end, speedup=speedup,
        events=events, also=also))
    producer.start()
    wanted = {e["event_id"] for e in events}
    deadline = time.monotonic() + timeout
    seen, progress, stalled = 0, time.monotonic(), False
    while True:
        if on_tick:
            on_tick()
        preds = ledger.read_predictions(s3, settings.bucket, settings.model_name, day)
        if not producer.is_alive() and wanted <= set(preds["event_id"]):
            break
        if len(preds) > seen:
            seen, progress = len(preds), time.monotonic()
        elif on_stall and not stalled and not producer.is_alive() and time.monotonic() - progress > stall_s:
            on_stall()
            stalled = True
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(wanted - set(preds['event_id']))} events of {day} not scored")
        time.sleep(5)
    assert preds["event_id"].is_unique, "an event was scored twice"
    visible = preds.set_index("event_id")["visible_time"]
    put_at = also.put_at if also is not None else firehose.put_at
    return {e: visible[e].timestamp() - put_at[e] for e in wanted}


def report(name: str, values: list[float]) -> None:
    print(f"{name}: n={len(values)} p50={_pct(values, 0.5):.1f} s p95={_pct(values, 0.95):.1f} s "
          f"max={max(values):.1f} s mean={statistics.fmean(values):.1f} s")


def event_path(settings, api, day: date, speedup: float) -> None:
    from contrail import lake
    from contrail.stream import ledger

    api.set_paused("stream_sweep", True)
    api.set_paused("stream_scoring", False)
    rescue: list[float] = []

    def safety_net() -> None:
        # Airflow 3.3 can strand asset events that arrive while a DAG is at max_active_runs
        # until the next event (apache/airflow#56050); the sweep is the designed safety net
        rescue.append(time.time())
        api.set_paused("stream_sweep", False)
        api.trigger("stream_sweep")

    runs_before = len(api.runs("stream_scoring"))
    event = replay_and_wait(settings, day, speedup, on_stall=safety_net)
    report(f"event path incl. safety-net sweep, {day} at {speedup:g}x", list(event.values()))
    if rescue:
        preds = ledger.read_predictions(lake.s3_client(settings), settings.bucket, settings.model_name, day)
        late = set(preds.loc[preds["visible_time"].map(lambda t: t.timestamp()) >= rescue[0], "event_id"])
        report("event path alone (events scored before the safety-net sweep)",
               [v for e, v in event.items() if e not in late])
        print(f"event path: {len(late)} of {len(event)} events stranded by apache/airflow#56050, "
              "scored by the sweep")
    runs = len(api.runs("stream_scoring")) - runs_before
    print(f"event path: {runs} stream_scoring runs for {len(event)} events")


def sweep_path(settings, api, day: date, speedup: float, every: float) -> None:
    api.set_paused("stream_scoring", True)
    api.set_paused("stream_sweep", False)
    last = [0.0]

    def tick() -> None:
        if time.monotonic() - last[0] >= every:
            if not [r for r in api.runs("stream_sweep") if r["state"] in ("queued", "running")]:
                api.trigger("stream_sweep")
                last[0] = time.monotonic()

    sweep = list(replay_and_wait(settings, day, speedup, on_tick=tick).values())
    report(f"sweep-only path (every {every:g} s), {day} at {speedup:g}x", sweep)
    # on its real 15-minute schedule the sweep adds, on average, half the gap between runs
    extra = (SWEEP_SCHEDULE_S - every) / 2
    print(f"sweep-only path on its 15-min schedule (derived): "
          f"mean ≈ {statistics.fmean(sweep) + extra:.0f} s, "
          f"worst ≈ {max(sweep) + SWEEP_SCHEDULE_S - every:.0f} s")


def kinesis_path(settings, api, day: date, speedup: float) -> None:
    """The second source: events put to the Kinesis Data Stream (Firehose still lands them for
    the warm tier), consumed by ``stream_kinesis`` on its one-minute schedule, draining while
    records keep coming; look-ups from the online store."""
    from contrail import lake
    from contrail.simulate import kinesis_sink

    api.set_paused("stream_kinesis", False)
    started = datetime.now(timezone.utc).isoformat()
    sink = TimedSink(kinesis_sink(lake.client("kinesis", settings), settings.kinesis_stream))
    fresh = replay_and_wait(settings, day, speedup, also=sink)
    report(f"Kinesis source (stream_kinesis every minute, draining), {day} at {speedup:g}x",
           list(fresh.values()))
    # the runs that were alive during the replay (a run drains while records keep coming)
    runs = [r for r in api.runs("stream_kinesis") if (r.get("end_date") or "9999") >= started]
    print(f"Kinesis source: {len(runs)} stream_kinesis run(s) for {len(fresh)} events")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speedup", type=float, default=240.0, help="replay speed over the schedule clock")
    parser.add_argument("--sweep-every", type=float, default=60.0, help="seconds between sweep runs here")
    parser.add_argument("--paths", default="event,sweep",
                        help="which paths to measure, comma-separated: event, sweep (the Firehose source), "
                             "kinesis (the Kinesis source: a stack with CONTRAIL_STREAM_SOURCE=kinesis, "
                             "measured alone) or lookups")
    parser.add_argument("--event-day", type=date.fromisoformat, default=EVENT_DAY)
    parser.add_argument("--sweep-day", type=date.fromisoformat, default=SWEEP_DAY)
    parser.add_argument("--state-dir", help="reuse a kept bench state (champion + features already there); "
                                            "replay days not replayed in it before")
    parser.add_argument("--lookup-day", type=date.fromisoformat, default=date(2013, 6, 14))
    args = parser.parse_args()
    if args.paths == "lookups":
        import sys

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from online_lookups import run

        run(args.lookup_day)
        return
    paths = args.paths.split(",")
    if "kinesis" in paths and len(paths) > 1:
        parser.error("--paths kinesis runs alone: the source switch unschedules the Firehose DAGs")
    state = args.state_dir or tempfile.mkdtemp(prefix="contrail-bench-freshness-")
    os.environ.update({"CONTRAIL_STATE_DIR": state, "CONTRAIL_AIRFLOW_PORT": "38080",
                       "CONTRAIL_MLFLOW_PORT": "35000", "CONTRAIL_EMULATOR_PORT": "34566",
                       "CONTRAIL_SPARK_CONNECT_PORT": "35002",
                       "CONTRAIL_STREAM_SOURCE": "kinesis" if "kinesis" in paths else "firehose"})
    from contrail.demo import run_pipeline
    from contrail.settings import load_settings
    from contrail.stack import local
    from contrail.stack.api import AirflowClient

    settings = load_settings()
    local.start(settings)
    try:
        api = AirflowClient.for_local(settings)
        if not args.state_dir:
            t0 = time.monotonic()
            run_pipeline(settings, BATCH_DAYS, timeout=2400, log=lambda *_a, **_k: None)
            print(f"batch pipeline for {len(BATCH_DAYS)} days (champion + features): "
                  f"{time.monotonic() - t0:.0f} s")
        local.wait_for_dags(settings, ["stream_scoring", "stream_sweep", "stream_kinesis"])
        if "event" in paths:
            event_path(settings, api, args.event_day, args.speedup)
        if "sweep" in paths:
            sweep_path(settings, api, args.sweep_day, args.speedup, args.sweep_every)
        if "kinesis" in paths:
            kinesis_path(settings, api, args.event_day, args.speedup)
    finally:
        local.stop(settings)
        if not args.state_dir and os.environ.get("CONTRAIL_KEEP_BENCH_STATE") != "1":
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
