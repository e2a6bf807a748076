"""``make demo``: start the local stack, play a few days of 2013 through every stage via the
real Airflow scheduler, stop the stack and print what happened and where to look.

It drives the pipeline only the way a user would: the simulator drops files into
``incoming/``, the landing DAGs (scheduled, catching up) pick them up, assets trigger
quality, features and scoring, and training is triggered through the REST API.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

from contrail import catalog, lake
from contrail.settings import DATASETS, Settings

DAG_IDS = ["landing_flights", "landing_weather", "quality", "features", "training", "scoring"]


@dataclass
class MemorySampler:
    """Samples the stack's memory every ``interval`` seconds in a background thread; keeps each
    sample's total and, for the largest, what each component held then."""

    settings: Settings
    interval: float = 2.0
    samples: list[float] = field(default_factory=list)
    peak_by_component: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "MemorySampler":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from contrail.stack.local import memory_by_component

        while not self._stop.is_set():
            by_component = memory_by_component(self.settings)
            total = sum(by_component.values())
            if total > self.peak:
                self.peak_by_component = by_component
            self.samples.append(total)
            self._stop.wait(self.interval)

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max(self.samples, default=0.0)


def wait_for(predicate, what: str, timeout: float, failure_check=None, poll: float = 3.0,
             progress: Callable[[], str] | None = None, log=print):
    """Poll ``predicate`` until it returns something truthy and return that; ``failure_check``
    may raise early. ``progress`` (e.g. "2/3 days published") is shown on one live line while
    waiting, with the seconds elapsed. Raises TimeoutError naming ``what``."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if failure_check:
                failure_check()
            if progress is not None:
                log(f"\r[demo]   waiting for {what}: {progress()} ({time.monotonic() - started:.0f}s)",
                    end="", flush=True)
            time.sleep(poll)
    finally:
        if progress is not None:
            log("")
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_pipeline(settings: Settings, days: list[date], *, timeout: float = 900.0,
                 log=print) -> dict:
    """Drive ``days`` through the running stack; returns a summary dict. Raises on failure."""
    from contrail.simulate import drop_days
    from contrail.stack.api import AirflowClient
    from contrail.stack.local import wait_for_dags

    s3 = lake.s3_client(settings)
    api = AirflowClient.for_local(settings)
    t0 = time.monotonic()
    wait_for_dags(settings, DAG_IDS)
    log(f"[demo] DAGs parsed ({time.monotonic() - t0:.0f}s); dropping {days[0]}..{days[-1]} into incoming/")
    drop_days(s3, settings.bucket, days)
    for dag_id in DAG_IDS:
        api.set_paused(dag_id, False)

    wanted = {d.isoformat() for d in days}

    def failed_runs() -> None:
        for dag_id in ("landing_flights", "landing_weather", "quality", "features", "scoring"):
            for run in api.runs(dag_id):
                logical = (run.get("logical_date") or "")[:10]
                if run["state"] == "failed" and (dag_id not in ("landing_flights", "landing_weather")
                                                 or logical in wanted):
                    raise RuntimeError(f"{dag_id} run {run['dag_run_id']} failed; see the Airflow UI")

    def published_count(zone: str) -> int:
        return len(set(days) & set(catalog.published_days(s3, settings.bucket, zone)))

    features = catalog.features_zone(settings.feature_set)
    wait_for(lambda: published_count(features) == len(days), "features for every demo day", timeout, failed_runs,
             progress=lambda: f"{published_count(features)}/{len(days)} day(s) published", log=log)
    log(f"[demo] landing → quality → features done ({time.monotonic() - t0:.0f}s); triggering training")
    run = api.trigger("training", conf={"window_days": len(days), "window_end": days[-1].isoformat(),
                                        "test_days": 1, "valid_days": 1})
    wait_for(lambda: api.request("GET", f"/dags/training/dagRuns/{run['dag_run_id']}")["state"]
              in ("success", "failed"), "the training run", timeout, log=log,
             progress=lambda: api.request("GET", f"/dags/training/dagRuns/{run['dag_run_id']}")["state"])
    state = api.request("GET", f"/dags/training/dagRuns/{run['dag_run_id']}")["state"]
    if state != "success":
        raise RuntimeError(f"training run {run['dag_run_id']} {state}; see the Airflow UI")

    predictions = catalog.predictions_zone(settings.model_name)
    wait_for(lambda: published_count(predictions) == len(days), "predictions for every demo day", timeout,
             failed_runs, progress=lambda: f"{published_count(predictions)}/{len(days)} day(s) scored", log=log)
    log(f"[demo] training → registry → scoring done ({time.monotonic() - t0:.0f}s)")
    return summarize(settings, days, api, s3)


STREAM_HOURS = (6, 10)  # the morning departures of the last demo day (267 events on 2013-01-03)
STREAM_SPEEDUP = 240.0  # four hours of schedule in a minute


def run_stream(settings: Settings, day: date, *, timeout: float = 600.0, log=print) -> dict:
    """Replay the scheduled departures of ``day`` between :data:`STREAM_HOURS` through Firehose
    at :data:`STREAM_SPEEDUP`, wait for the event-driven path to score them, and measure their
    freshness: the wall time from an event's put to its prediction (``processed_time``)."""
    import math

    from contrail import nycflights
    from contrail.simulate import LOCAL_ROLE_ARN, ensure_delivery_stream, replay_stream, schedule_events
    from contrail.stack.api import AirflowClient
    from contrail.stream import ledger

    start, end = (datetime(day.year, day.month, day.day, h) for h in STREAM_HOURS)
    events = list(schedule_events(nycflights.load("flights"), start, end))
    api = AirflowClient.for_local(settings)
    api.set_paused("stream_scoring", False)
    firehose = lake.client("firehose", settings)
    ensure_delivery_stream(firehose, settings.firehose_stream, f"arn:aws:s3:::{settings.bucket}", LOCAL_ROLE_ARN)
    put_at: dict[str, float] = {}

    def counted():
        for i, event in enumerate(events, 1):
            put_at[event["event_id"]] = time.time()  # handed to Firehose within this minute's batch
            if i % 10 == 0 or i == len(events):
                log(f"\r[demo]   stream: put {i}/{len(events)} events ({STREAM_SPEEDUP:.0f}x)", end="", flush=True)
            yield event

    log(f"[demo] replaying {len(events)} scheduled departures of {day} {STREAM_HOURS[0]:02d}:00-"
        f"{STREAM_HOURS[1]:02d}:00 through Firehose at {STREAM_SPEEDUP:.0f}x")
    stats = replay_stream(firehose, settings.firehose_stream, start, end, STREAM_SPEEDUP, events=counted())
    log("")
    s3 = lake.s3_client(settings)
    wanted = set(put_at)

    def scored() -> set[str]:
        preds = ledger.read_predictions(s3, settings.bucket, settings.model_name)
        return wanted & set(preds["event_id"]) if len(preds) else set()

    try:
        wait_for(lambda: scored() == wanted, "the stream's predictions", timeout, log=log,
                 progress=lambda: f"{len(scored())}/{len(wanted)} events scored")
    except TimeoutError:
        log("[demo] not every event was scored in time; freshness is measured on those that were")
    preds = ledger.read_predictions(s3, settings.bucket, settings.model_name)
    preds = preds[preds["event_id"].isin(wanted)] if len(preds) else preds
    # processed_time is the scoring task's UTC wall clock (ISO, with its offset)
    lags = sorted(datetime.fromisoformat(str(stamp)).timestamp() - put_at[event_id]
                  for event_id, stamp in zip(preds["event_id"], preds["processed_time"])) if len(preds) else []
    return {"events": stats.events, "scored": len(lags), "put_s": stats.slept_s,
            "freshness_p50_s": lags[len(lags) // 2] if lags else math.nan,
            "freshness_max_s": lags[-1] if lags else math.nan}


def summarize(settings: Settings, days: list[date], api, s3) -> dict:
    import mlflow

    runs = {}
    for dag_id in DAG_IDS:
        states: dict[str, int] = {}
        for r in api.runs(dag_id):
            states[r["state"]] = states.get(r["state"], 0) + 1
        runs[dag_id] = states
    zones = {}
    for zone, prefix_of in (
        ("landing", lambda d: catalog.landing_partition("flights", d)),
        ("validated", lambda d: catalog.validated_pointer_key("flights", d)),
        ("features", lambda d: catalog.features_partition(settings.feature_set, d)),
        ("predictions", lambda d: catalog.predictions_partition(settings.model_name, d)),
    ):
        zones[zone] = sum(1 for d in days for _ in lake.list_objects(s3, settings.bucket, prefix_of(d)))
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_url)
    versions = client.search_model_versions(f"name='{settings.model_name}'")
    model = client.get_registered_model(settings.model_name)
    return {"runs": runs, "zones": zones, "model_versions": len(versions),
            "aliases": dict(model.aliases), "days": [d.isoformat() for d in days]}


def run_demo(settings: Settings, *, days: int, start: date) -> int:
    from contrail.stack import control, local

    day_list = [start + timedelta(days=i) for i in range(days)]
    was_running = bool(local.running(settings))
    t0 = time.monotonic()
    if not was_running and control.up_detached(settings) != 0:
        return 1
    up_s = time.monotonic() - t0
    idle = local.memory_mb(settings)
    try:
        with MemorySampler(settings) as mem:
            summary = run_pipeline(settings, day_list)
            stream = run_stream(settings, day_list[-1])
    finally:
        if not was_running:
            print("[demo] stopping the stack (state kept in .contrail/; `make up` brings it back)")
            control.down(settings)
    total = time.monotonic() - t0
    print("\n=== contrail demo summary ===")
    print(f"days             {', '.join(summary['days'])}")
    for dag_id, states in summary["runs"].items():
        print(f"  {dag_id:16s} runs: {states}")
    print("lake objects for the demo days (flights):",
          ", ".join(f"{z} {n}" for z, n in summary["zones"].items()))
    print(f"model registry   {settings.model_name}: {summary['model_versions']} version(s), "
          f"aliases {summary['aliases']}")
    print(f"stream           {stream['scored']}/{stream['events']} events scored; freshness (put → prediction) "
          f"median {stream['freshness_p50_s']:.1f}s, max {stream['freshness_max_s']:.1f}s")
    print(f"timing           stack start {up_s:.0f}s, demo total {total:.0f}s")
    print(f"memory (PSS)     idle {idle:.0f} MiB, peak during demo {mem.peak:.0f} MiB")
    print("where to look (after `make up`):")
    control.print_urls(settings)
    print(f"  Lake view    {settings.airflow_url}/plugin/lake   (Airflow menu: Browse → Lake; click a day)")
    print(f"  the model    {settings.mlflow_url}/#/models/{settings.model_name}   (each version says why)")
    print("  the stream   Airflow DAG stream_scoring (one run per Firehose object); predictions under "
          f"s3://{settings.bucket}/{catalog.stream_predictions_prefix(settings.model_name)}")
    print(f"  aws s3 ls --endpoint-url {settings.emulator_url} s3://{settings.bucket}/features/{settings.feature_set}/")
    return 0
