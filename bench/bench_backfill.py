"""The year backfill, drops to predictions, through the real stack — and its bare-compute floor.

From a fresh stack state (its own state dir, ports and, on scale-out, databases) it drops every
day of the range into ``incoming/``, lets the landing DAGs catch up through the scheduler, the
asset-scheduled quality, features and scoring DAGs follow, trains once through the REST API and
waits until every day is scored. Then one more day (the range's last, held back) is dropped on
the warm stack: the daily increment, drop → predictions visible. The stack's memory (PSS of
every process and child) is sampled throughout.

The floor runs the same stage functions (``contrail.stages.*``) in one process over the same
data on an emulator of its own, with no orchestrator: land every day, validate each dataset in
one gate, plan + spark-submit + audit-and-publish, fit once (``train_on_lake``, no MLflow), score
every day. Per stage it prints wall time, task instances and the ratio stack / floor, and how
many days' data differ between the stack's lake and the floor's (0: same data, once).
``--drills`` kills the scheduler, a running task and the Spark job with ``kill -9`` mid-backfill.
``--live`` measures the stream path while the backfill runs: once the first two weeks are built,
the training DAG fits a champion on them (it scores the year as it is built; no year training,
so the floor's predictions differ), one day of events is replayed through Firehose at 240x while
the rest of the year catches up, and another once it is done (the reference).

    .venv/bin/python bench/bench_backfill.py [--from 2013-01-01] [--to 2013-12-30]
        [--profile embedded|scaleout] [--no-floor] [--no-stack] [--drills] [--live] [--no-preload]

The landing DAGs catch up from their start date (2013-01-01), so a shorter run keeps
``--from 2013-01-01`` and moves ``--to``. Compare ratios within one run: the machine is shared and its load moves every figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

STAGES = ("landing", "quality", "features", "training", "scoring")
STAGE_DAGS = {"landing": ("landing_flights", "landing_weather"), "quality": ("quality",),
              "features": ("features",), "training": ("training",), "scoring": ("scoring",)}
BENCH_ENV = {"CONTRAIL_AIRFLOW_PORT": "28280", "CONTRAIL_MLFLOW_PORT": "25200",
             "CONTRAIL_EMULATOR_PORT": "24766", "CONTRAIL_SPARK_CONNECT_PORT": "25302",
             "CONTRAIL_REDIS_DB": "12"}
# --live: a champion fitted on the first two weeks once they are built; one day of events replayed
# through Firehose while the rest of the year is still catching up, another once it is done
LIVE_TRAIN_DAYS = 14
LIVE_DAY_DURING, LIVE_DAY_AFTER = date(2013, 1, 3), date(2013, 1, 2)
# a day whose drop is held back and arrives while the backfill runs: the daily increment under load
LIVE_LATE_DAY = date(2013, 1, 15)
LIVE_SPEEDUP = 240.0
# CONTRAIL_BENCH_PORT_OFFSET moves every port (and the Redis db by one) so two runs, say one per
# profile, can share the machine
_OFFSET = int(os.environ.get("CONTRAIL_BENCH_PORT_OFFSET", "0"))
BENCH_ENV = {k: str(int(v) + (_OFFSET if k.endswith("_PORT") else min(_OFFSET, 1))) for k, v in BENCH_ENV.items()}
SERVICE_URLS = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                "AIRFLOW__CELERY__RESULT_BACKEND", "CONTRAIL_MLFLOW_BACKEND_URI")


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def training_window(days: list[date]) -> dict:
    """The training DAG's defaults (90 days, 14 test, 7 validation) for a long range, shrunk for
    a short one so a quick run still trains."""
    return {"window_end": days[-1].isoformat(), "window_days": 90,
            "test_days": max(1, min(14, len(days) // 6)), "valid_days": max(1, min(7, len(days) // 10))}


class Progress:
    """Which days each stage has finished, read from the lake through the catalog."""

    def __init__(self, s3, settings) -> None:
        self.s3, self.settings = s3, settings

    def done(self, days: list[date]) -> dict[str, int]:
        from contrail import catalog, lake
        from contrail.settings import DATASETS

        s3, bucket, wanted = self.s3, self.settings.bucket, {d.isoformat() for d in days}

        def dts(prefix: str, suffix: str) -> set[str]:
            return {k.split("dt=", 1)[1][:10] for k in (o.key for o in lake.list_objects(s3, bucket, prefix))
                    if k.endswith(suffix) and "dt=" in k}

        landed = set.intersection(*(dts(catalog.landing_zone(ds), catalog.MANIFEST) for ds in DATASETS))
        judged = set.intersection(*(dts(catalog.quality_results_zone(ds), ".json") for ds in DATASETS))
        built = {d.isoformat() for d in catalog.published_days(s3, bucket, catalog.features_zone(
            self.settings.feature_set))}
        scored = {d.isoformat() for d in catalog.published_days(s3, bucket, catalog.predictions_zone(
            self.settings.model_name))}
        return {"landing": len(landed & wanted), "quality": len(judged & wanted),
                "features": len(built & wanted), "scoring": len(scored & wanted)}


def lake_digest(s3, settings, days: list[date]) -> dict[str, dict[str, str]]:
    """Per stage and day, a digest of what the lake holds: the landed content and version, the
    validated version, the published features' rows and the predicted probabilities. Builds
    and run ids are left out (they name the run), so an undisturbed run, a run with failure
    drills and the floor compare equal exactly when they produced the same data, once."""
    import hashlib

    import pandas as pd

    from contrail import catalog, lake
    from contrail.settings import DATASETS

    bucket = settings.bucket

    def frame_hash(frame: pd.DataFrame, drop: tuple[str, ...] = ()) -> str:
        frame = frame.drop(columns=[c for c in drop if c in frame.columns])
        frame = frame.sort_values(list(frame.columns)).reset_index(drop=True)
        return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()[:16]

    landing_keys = {ds: [o.key for o in lake.list_objects(s3, bucket, catalog.landing_zone(ds))
                         if o.key.endswith(catalog.MANIFEST)] for ds in DATASETS}
    features = catalog.published(s3, bucket, catalog.features_zone(settings.feature_set))
    predictions = catalog.published(s3, bucket, catalog.predictions_zone(settings.model_name))
    out: dict[str, dict[str, str]] = {"landing": {}, "quality": {}, "features": {}, "scoring": {}}
    for day in days:
        dt = day.isoformat()
        landed = []
        for ds in DATASETS:
            for key in sorted(k for k in landing_keys[ds] if f"dt={dt}/" in k):
                manifest = lake.read_json(s3, bucket, key)
                landed.append((ds, manifest["version"], manifest.get("content_fingerprint"), manifest["rows"]))
        out["landing"][dt] = str(landed)
        out["quality"][dt] = str([lake.read_json(s3, bucket, catalog.validated_pointer_key(ds, day))["version"]
                                  for ds in DATASETS])
        out["features"][dt] = frame_hash(catalog.read_published(s3, bucket, features[day])) if day in features else "-"
        out["scoring"][dt] = (frame_hash(catalog.read_published(s3, bucket, predictions[day])[["flight_id", "probability"]])
                              if day in predictions else "-")
    return out


def compare_digests(a: dict[str, dict[str, str]], b: dict[str, dict[str, str]]) -> dict[str, int]:
    """Per stage, how many days differ between two lake digests."""
    return {stage: sum(a[stage].get(dt) != b[stage].get(dt) for dt in set(a[stage]) | set(b[stage]))
            for stage in a}


def task_instances(api, dag_id: str, since: str | None = None) -> int:
    params = {"limit": 1}
    if since:
        params["start_date_gte"] = since
    return int(api.request("GET", f"/dags/{dag_id}/dagRuns/~/taskInstances", params=params)["total_entries"])


def task_seconds(api, dag_id: str) -> list[float]:
    """The duration of every finished task instance of a DAG (Airflow's start to end: the task
    process's start-up, the DAG parse, the task's own work)."""
    durations, offset = [], 0
    while True:
        page = api.request("GET", f"/dags/{dag_id}/dagRuns/~/taskInstances",
                           params={"limit": 100, "offset": offset, "state": ["success", "failed"]})
        tis = page["task_instances"]
        durations += [t["duration"] for t in tis if t.get("duration") is not None]
        offset += len(tis)
        if not tis or offset >= page["total_entries"]:
            return durations


def wait_all(progress: Progress, days: list[date], stage_names: tuple[str, ...], finished: dict[str, float],
             t0: float, api, timeout: float, log, on_progress=None) -> None:
    """Poll until every stage in ``stage_names`` has every day; record when each got there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = progress.done(days)
        if on_progress is not None:
            on_progress(done)
        now = time.monotonic() - t0
        for stage in stage_names:
            if stage not in finished and done[stage] == len(days):
                finished[stage] = now
        log(f"\r  {now:6.0f}s  " + "  ".join(f"{s} {done[s]}/{len(days)}" for s in ("landing", "quality",
                                                                                    "features", "scoring")),
            end="", flush=True)
        if all(s in finished for s in stage_names):
            log("")
            return
        for dag_id in ("quality", "features", "scoring"):
            failed = [r["dag_run_id"] for r in api.runs(dag_id) if r["state"] == "failed"]
            if failed:
                raise RuntimeError(f"{dag_id} run(s) failed: {failed[:3]}; see the Airflow UI")
        time.sleep(5)
    raise TimeoutError(f"backfill not done after {timeout:.0f}s: {progress.done(days)}")


class Drills:
    """``kill -9`` during the backfill: the scheduler once a quarter of the days are landed, a
    running quality or feature task's process at half, the feature job's Spark driver when one
    runs after that. Each fires once; what was killed is recorded."""

    def __init__(self, settings, api, days: int, log) -> None:
        self.settings, self.api, self.days, self.log = settings, api, days, log
        self.killed: list[str] = []

    def __call__(self, done: dict[str, int]) -> None:
        from contrail.stack import drills

        if "scheduler" not in self.killed and done["landing"] >= self.days // 4:
            drills.kill_component(self.settings, "scheduler")
            self._record("scheduler")
        elif "task" not in self.killed and done["landing"] >= self.days // 2:
            tis = self.api.request("GET", "/dags/~/dagRuns/~/taskInstances",
                                   params={"state": "running", "limit": 100})["task_instances"]
            victim = next((t for t in tis if t["dag_id"] in ("quality", "features") and t.get("pid")), None)
            if victim:
                try:
                    os.kill(int(victim["pid"]), signal.SIGKILL)
                except ProcessLookupError:  # it finished since the listing: the next check picks another
                    return
                self._record("task", f"{victim['dag_id']}.{victim['task_id']}")
        elif "task" in self.killed and "spark job" not in self.killed:
            job = drills.spark_job(self.settings, self.api)
            if job is not None:
                drills.kill_process(job)
                self._record("spark job")

    def _record(self, what: str, detail: str = "") -> None:
        self.killed.append(what)
        self.log(f"\n[bench] kill -9: {what} {detail}".rstrip())


def stream_freshness(settings, api, day: date, log, on_tick=None) -> list[float]:
    """One day of events through Firehose at LIVE_SPEEDUP x, scored on the event path
    (``stream_scoring``); seconds from ``PutRecordBatch`` to each prediction being visible."""
    from bench_freshness import replay_and_wait

    api.set_paused("stream_scoring", False)

    def safety_net() -> None:  # apache/airflow#56050: an event can strand until the next one
        log(f"\n[bench] live path {day}: stalled, the sweep picks up what is left")
        api.set_paused("stream_sweep", False)
        api.trigger("stream_sweep")

    return list(replay_and_wait(settings, day, LIVE_SPEEDUP, on_stall=safety_net, on_tick=on_tick).values())


class LivePath(threading.Thread):
    """The live path during the backfill: once the first LIVE_TRAIN_DAYS days are built, the
    training DAG fits a champion on them; then LIVE_DAY_DURING's events are replayed through
    Firehose while the rest of the year is still landing, being validated and built, and the
    held-back LIVE_LATE_DAY is dropped: the daily increment during the backfill (drop ->
    predictions visible). The batch backlog (days not yet built) is recorded when the replay
    starts and ends."""

    def __init__(self, settings, days: list[date], log) -> None:
        super().__init__(daemon=True)
        self.settings, self.days, self.log = settings, days, log
        self.out: dict = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _run(self) -> None:
        from contrail import lake
        from contrail.demo import wait_for
        from contrail.stack.api import AirflowClient

        api = AirflowClient.for_local(self.settings)
        progress = Progress(lake.s3_client(self.settings), self.settings)
        first = self.days[:LIVE_TRAIN_DAYS]
        wait_for(lambda: progress.done(first)["features"] == len(first), "the first weeks' features", 7200,
                 poll=5, log=lambda *_a, **_k: None)
        run = api.trigger("training", conf=training_window(first))
        done = wait_for(lambda: _terminal(api, "training", run["dag_run_id"]), "the live path's champion", 1800,
                        poll=5, log=lambda *_a, **_k: None)
        if done != "success":
            raise RuntimeError(f"training run {run['dag_run_id']} (the live path's champion) {done}")
        self.out["backlog_at_start"] = len(self.days) - progress.done(self.days)["features"]
        self.log(f"\n[bench] live path: champion fitted on {first[0]}..{first[-1]}; replaying {LIVE_DAY_DURING} "
                 f"at {LIVE_SPEEDUP:g}x with {self.out['backlog_at_start']} days still to build")
        from contrail.simulate import drop_days

        late: dict[str, float] = {}
        t_late = time.monotonic()
        drop_days(progress.s3, self.settings.bucket, [LIVE_LATE_DAY])

        def time_late_day() -> None:
            done = progress.done([LIVE_LATE_DAY])
            for stage in ("landing", "quality", "features", "scoring"):
                if stage not in late and done[stage]:
                    late[stage] = time.monotonic() - t_late

        self.out["during"] = stream_freshness(self.settings, api, LIVE_DAY_DURING, self.log, on_tick=time_late_day)
        self.out["backlog_at_end"] = len(self.days) - progress.done(self.days)["features"]
        wait_for(lambda: time_late_day() or "scoring" in late, "the late day's predictions", 1800, poll=5,
                 log=lambda *_a, **_k: None)
        self.out["late_day"] = late


def _terminal(api, dag_id: str, run_id: str) -> str | None:
    state = api.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
    return state if state in ("success", "failed") else None


def run_stack(profile: str, days: list[date], increment: date | None, log=print, drills: bool = False,
              preload: bool = True, live: bool = False) -> dict:
    from contrail import lake
    from contrail.demo import DAG_IDS, MemorySampler, wait_for
    from contrail.settings import load_settings
    from contrail.simulate import drop_days
    from contrail.stack import local
    from contrail.stack.api import AirflowClient

    state = tempfile.mkdtemp(prefix=f"contrail-bench-backfill-{profile}-")
    os.environ.update({**BENCH_ENV, "CONTRAIL_STATE_DIR": state, "CONTRAIL_PROFILE": profile,
                       "CONTRAIL_TASK_PRELOAD": "1" if preload else "0"})
    for key in SERVICE_URLS:
        os.environ.pop(key, None)
    settings = load_settings()
    out: dict = {"profile": profile, "days": len(days), "preload": preload, "live": live}
    t_start = time.monotonic()
    local.start(settings)
    out["start_s"] = time.monotonic() - t_start
    try:
        api = AirflowClient.for_local(settings)
        local.wait_for_dags(settings, DAG_IDS)
        s3 = lake.s3_client(settings)
        progress = Progress(s3, settings)
        with MemorySampler(settings, interval=2.0) as mem:
            cpu_before = local.cpu_by_component(settings)
            t0 = time.monotonic()
            # with --live one day arrives late, during the backfill (LivePath drops it)
            drop_days(s3, settings.bucket, [d for d in days if not (live and d == LIVE_LATE_DAY)])
            out["drops_s"] = time.monotonic() - t0
            log(f"[bench] dropped {len(days)} days in {out['drops_s']:.1f}s; the DAGs catch up")
            for dag_id in DAG_IDS:
                api.set_paused(dag_id, False)
            finished: dict[str, float] = {}
            drill = Drills(settings, api, len(days), log) if drills else None
            probe = LivePath(settings, days, log) if live else None
            if probe:
                probe.start()

            def watch(done: dict[str, int]) -> None:
                if drill:
                    drill(done)
                if probe and probe.error is not None:
                    raise RuntimeError(f"the live path during the backfill failed: {probe.error!r}")

            wait_all(progress, days, ("landing", "quality", "features"), finished, t0, api, 7200, log, watch)
            t_train = time.monotonic()
            if probe:
                # the champion fitted on the first weeks scores the year as it is built
                probe.join(timeout=3600)
                if probe.error is not None or probe.is_alive():
                    raise RuntimeError(f"the live path during the backfill did not finish: {probe.error}")
                out["live"] = probe.out
            else:
                run = api.trigger("training", conf=training_window(days))
                if wait_for(lambda: _terminal(api, "training", run["dag_run_id"]), "the training run", 1800,
                            log=lambda *_a, **_k: None) != "success":
                    raise RuntimeError(f"training run {run['dag_run_id']} failed")
            finished["training"] = time.monotonic() - t0
            out["training_s"] = time.monotonic() - t_train
            wait_all(progress, days, ("scoring",), finished, t0, api, 3600, log)
            out["finished"] = finished
            out["killed"] = drill.killed if drill else []
            if drill:
                from contrail.stack import local as stack_local

                out["restarts"] = {n: c["restarts"] for n, c in stack_local.supervision(settings).items()
                                   if c.get("restarts")}
            t_digest = time.monotonic()
            out["digest"] = lake_digest(s3, settings, days)
            log(f"[bench] lake digest read in {time.monotonic() - t_digest:.0f}s")
            # where the machine's time went: CPU seconds per component, drops -> every day scored
            cpu_after = local.cpu_by_component(settings)
            out["cpu_by_component"] = {n: cpu_after[n] - cpu_before.get(n, 0.0) for n in cpu_after}
            # what the stack holds once the year is done (the emulator keeps the lake in memory)
            out["after_by_component"] = local.memory_by_component(settings)
            out["wall_s"] = finished["scoring"]
            out["peak_mib"] = mem.peak
            out["peak_by_component"] = dict(mem.peak_by_component)
            out["task_instances"] = {stage: sum(task_instances(api, d) for d in STAGE_DAGS[stage])
                                     for stage in STAGES}
            out["task_seconds"] = {stage: [x for d in STAGE_DAGS[stage] for x in task_seconds(api, d)]
                                   for stage in STAGES}
            if increment is not None:
                t1 = time.monotonic()
                drop_days(s3, settings.bucket, [increment])
                inc: dict[str, float] = {}
                try:
                    wait_all(progress, [increment], ("landing", "quality", "features", "scoring"), inc, t1, api,
                             1800, log)
                    out["increment"] = {"day": increment.isoformat(), **inc}
                except TimeoutError as exc:  # the backfill's figures are still worth printing
                    out["increment_error"] = f"{increment}: {exc}"
            out["peak_with_increment_mib"] = mem.peak
            if live:  # the same path on the stack once the year is done: the reference
                out["live"]["after"] = stream_freshness(settings, api, LIVE_DAY_AFTER, log)
    finally:
        local.stop(settings)
        local.reset(settings)
        shutil.rmtree(state, ignore_errors=True)
    return out


def run_floor(days: list[date], log=print) -> dict:
    """The same stage functions in this one process, on an emulator of their own."""
    import socket

    from contrail import catalog, lake
    from contrail.features import run_local
    from contrail.landing import RunInfo
    from contrail.quality import QualityGate, publish_data_docs
    from contrail.settings import DATASETS, load_settings
    from contrail.simulate import drop_days
    from contrail.stages import features as features_stage
    from contrail.stages import landing as landing_stage
    from contrail.stages import quality as quality_stage
    from contrail.stages import scoring as scoring_stage
    from contrail.stages import training as training_stage
    from contrail_spark.package import build_artifact

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="contrail-bench-floor-"))
    emulator = subprocess.Popen([sys.executable, "-m", "contrail.stack.emulator", "--port", str(port),
                                 "--state-file", str(tmp / "emulator.pickle")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = load_settings({"CONTRAIL_EMULATOR_PORT": str(port), "CONTRAIL_STATE_DIR": str(tmp)})
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": settings.region, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
           "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}"}
    out: dict[str, float] = {}
    try:
        s3 = lake.s3_client(settings)
        for _ in range(100):
            try:
                s3.create_bucket(Bucket=settings.bucket)
                break
            except Exception:  # the emulator is still starting
                time.sleep(0.2)
        drop_days(s3, settings.bucket, days)
        run = RunInfo(dag_id="floor", run_id="floor", landed_at="2014-01-01T00:00:00+00:00")
        t = time.perf_counter()
        for ds in DATASETS:
            for day in days:
                landing_stage.land(s3, settings.bucket, dataset=ds, dt=day, run=run)
        out["landing"] = time.perf_counter() - t
        t = time.perf_counter()
        for ds in DATASETS:
            # as the quality task does: the site is built in a directory that outlives the gate
            _, site = quality_stage.validate(s3, settings.bucket, dataset=ds,
                                             gate_factory=lambda: QualityGate(docs_dir=tmp / f"docs-{ds}"),
                                             run=quality_stage.QualityRun("floor", f"floor-{ds}"))
            if site is not None:
                publish_data_docs(s3, settings.bucket, site, prefix=catalog.data_docs_prefix())
                publish_data_docs(s3, settings.bucket, site, prefix=catalog.data_docs_prefix(f"floor-{ds}"))
        out["quality"] = time.perf_counter() - t
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as art:
            planned = features_stage.plan(s3, settings.bucket, feature_set=settings.feature_set, run_id="floor",
                                          artifact_dir=Path(art))
            run_local(planned["plan_uri"], artifact=build_artifact(Path(art)), env=env)
        features_stage.audit_and_publish(s3, settings.bucket, planned, feature_set=settings.feature_set,
                                         gate_factory=QualityGate)
        out["features"] = time.perf_counter() - t
        t = time.perf_counter()
        from contrail import families, training

        window = training_window(days)
        trained = training_stage.train_on_lake(
            s3, settings.bucket, feature_set=settings.feature_set, model_type=families.HIST_GRADIENT_BOOSTING,
            params=training.family_params(families.HIST_GRADIENT_BOOSTING, {}), cost_ratio=None,
            window_end=days[-1], **{k: window[k] for k in ("window_days", "test_days", "valid_days")})
        out["training"] = time.perf_counter() - t
        t = time.perf_counter()
        scoring_stage.score(s3, settings.bucket, feature_set=settings.feature_set, model_name=settings.model_name,
                            model=trained.model, model_version="floor", run_id="floor",
                            threshold=trained.threshold)
        out["scoring"] = time.perf_counter() - t
        out["digest"] = lake_digest(s3, settings, days)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def report(stack: dict | None, floor: dict | None) -> None:
    floor = dict(floor) if floor else None
    floor_digest = floor.pop("digest", None) if floor else None
    print()
    if stack:
        print(f"profile {stack['profile']}: {stack['days']} days backfilled; stack start-up {stack['start_s']:.0f} s, "
              f"drops written in {stack['drops_s']:.0f} s; task processes "
              f"{'forked warm (preloaded)' if stack['preload'] else 'cold (CONTRAIL_TASK_PRELOAD=0)'}")
    print(f"{'stage':<10} {'stack done at':>14} {'task inst.':>10} {'mean task s':>11} {'floor':>9}")
    for stage in STAGES:
        line = f"{stage:<10}"
        if stack:
            at = stack["finished"][stage]
            secs = stack.get("task_seconds", {}).get(stage) or [float("nan")]
            line += f" {at:12.0f} s {stack['task_instances'][stage]:>10} {sum(secs) / len(secs):9.2f} s"
        else:
            line += f" {'-':>14} {'-':>10} {'-':>11}"
        if floor:
            line += f" {floor[stage]:7.1f} s"
        print(line)
    if floor:
        total_floor = sum(floor.values())
        print(f"bare-compute floor, all stages: {total_floor:.0f} s")
    if stack:
        print(f"backfill of {stack['days']} days, drops -> predictions for every day: {stack['wall_s']:.0f} s "
              f"({stack['wall_s'] / 60:.1f} min), "
              + (f"scored by the champion fitted on the first {LIVE_TRAIN_DAYS} days during it"
                 if stack.get("live") else f"training {stack['training_s']:.0f} s of it"))
        if floor:
            print(f"orchestration overhead: stack / floor = {stack['wall_s'] / sum(floor.values()):.2f}x")
        at_peak = stack.get("peak_by_component") or {}
        print(f"stack memory peak (PSS) during the backfill: {stack['peak_mib']:.0f} MiB"
              + (f" ({_by_size(at_peak)})" if at_peak else ""))
        after = stack.get("after_by_component") or {}
        if after:
            print(f"stack memory (PSS) once the backfill is done: {sum(after.values()):.0f} MiB ({_by_size(after)})")
        cpu = stack.get("cpu_by_component") or {}
        if cpu:
            parts = _by_size(cpu)
            print(f"CPU seconds the stack used, drops -> every day scored: {sum(cpu.values()):.0f} s "
                  f"({sum(cpu.values()) / stack['wall_s']:.2f} of {os.cpu_count()} cores busy on average; {parts})")
        if stack.get("killed"):
            print(f"kill -9 during the backfill: {', '.join(stack['killed'])}; supervisor restarts: "
                  f"{stack.get('restarts', {})}")
        if floor_digest is not None:
            differ = compare_digests(stack["digest"], floor_digest)
            print("days whose lake differs from the floor's (landed content+version, validated version, "
                  f"features data, predicted probabilities): {differ}")
        if stack.get("live"):
            from bench_freshness import _pct

            lv = stack["live"]
            for when, day in (("during", LIVE_DAY_DURING), ("after", LIVE_DAY_AFTER)):
                if lv.get(when):
                    f = lv[when]
                    print(f"live path {when} the backfill ({day}, {len(f)} events at {LIVE_SPEEDUP:g}x): "
                          f"p50 {_pct(f, 0.5):.1f} s, p95 {_pct(f, 0.95):.1f} s, max {max(f):.1f} s"
                          + (f"; days still to build {lv['backlog_at_start']} -> {lv['backlog_at_end']}"
                             if when == "during" else ""))
            if lv.get("late_day"):
                la = lv["late_day"]
                print(f"daily increment during the backfill ({LIVE_LATE_DAY}, dropped late): landed {la['landing']:.0f} s, "
                      f"validated {la['quality']:.0f} s, built {la['features']:.0f} s, predictions visible "
                      f"{la['scoring']:.0f} s after the drop")
            if lv.get("during") and lv.get("after"):
                print(f"live path p95, during / after the backfill: "
                      f"{_pct(lv['during'], 0.95) / _pct(lv['after'], 0.95):.2f}x")
        if "increment_error" in stack:
            print(f"daily increment not done: {stack['increment_error']}")
        if "increment" in stack:
            inc = stack["increment"]
            print(f"daily increment on the warm stack ({inc['day']}): landed {inc['landing']:.0f} s, "
                  f"validated {inc['quality']:.0f} s, built {inc['features']:.0f} s, "
                  f"predictions visible {inc['scoring']:.0f} s after the drop")
            print(f"stack memory peak (PSS) incl. the increment: {stack['peak_with_increment_mib']:.0f} MiB")


def _by_size(mib: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f}" for name, value in sorted(mib.items(), key=lambda kv: -kv[1]))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="first", type=date.fromisoformat, default=date(2013, 1, 1))
    # the landing DAGs end with 2013-12-31's interval start, which is never scheduled, and the
    # data has no weather for 2013-12-31: the last day that can be an increment is Dec 30
    parser.add_argument("--to", dest="last", type=date.fromisoformat, default=date(2013, 12, 30))
    parser.add_argument("--profile", choices=["embedded", "scaleout"], default="embedded")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-stack", action="store_true")
    parser.add_argument("--no-preload", action="store_true",
                        help="start the stack with CONTRAIL_TASK_PRELOAD=0: every task process imports cold")
    parser.add_argument("--live", action="store_true",
                        help="measure the stream path during the backfill (a champion fitted on the first "
                             "two weeks scores the year; no year training)")
    parser.add_argument("--drills", action="store_true",
                        help="kill -9 the scheduler, a running task and the Spark job during the backfill")
    args = parser.parse_args()
    # a SIGTERM (``kill``, a CI timeout) unwinds like Ctrl-C, so the stack the run started is stopped
    signal.signal(signal.SIGTERM, _interrupt)
    if args.first != date(2013, 1, 1) and not args.no_stack:
        parser.error("the landing DAGs catch up from 2013-01-01: keep --from there (move --to)")
    if args.live and args.last <= LIVE_LATE_DAY + timedelta(days=1):
        parser.error(f"--live drops {LIVE_LATE_DAY} late and holds the last day back: --to after it")
    days = days_between(args.first, args.last)
    # the last day is held back: dropped on the warm stack once the rest is scored
    backfill, increment = days[:-1], days[-1]
    floor = None if args.no_floor else run_floor(backfill)
    if floor:
        print("floor:", {k: round(v, 1) for k, v in floor.items() if k != "digest"}, flush=True)
    stack = None if args.no_stack else run_stack(args.profile, backfill, increment, drills=args.drills,
                                                 preload=not args.no_preload, live=args.live)
    report(stack, floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
