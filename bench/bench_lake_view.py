"""Benchmark the Lake view's year through its real HTTP endpoint on a real emulator server.

A year-sized lake (2 datasets x 365 days landed + validated + quality results, a few days with
warnings, one quarantined; 365 features and 365 predictions partitions, with the stream's
micro-batch predictions beside them) is written into moto's store in-process (9,000 HTTP PUTs
would take minutes), snapshotted, and served by the stack's own emulator
(``python -m contrail.stack.emulator``) in its own process. The plugin's FastAPI app runs under
uvicorn behind Airflow's auth (a JWT from Airflow's auth manager), and ``GET /contrail/api/lake``
is timed over HTTP: the first (cold) load, then the median of several warm ones, with the S3
requests each made (counted by the emulator's request log). A second app behind the API server's
root middleware ``WarmUpOnFirstRequest`` (as the plugin registers it) shows a new API server's
first load once its background warm-up, started by the server's first request, is done.

Run: ``.venv/bin/python bench/bench_lake_view.py`` (about 30 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

_HOME = tempfile.mkdtemp(prefix="contrail-bench-lakeview-")
os.environ.update({"AWS_ACCESS_KEY_ID": "contrail-local", "AWS_SECRET_ACCESS_KEY": "contrail-local",
                   "AWS_DEFAULT_REGION": "us-east-1", "AIRFLOW_HOME": _HOME,
                   "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
                   "CONTRAIL_ENV": "local", "CONTRAIL_BUCKET": "contrail-bench-lake"})

from contrail import catalog, lake  # noqa: E402
from contrail.settings import DATASETS, load_settings  # noqa: E402

DAYS = [date(2013, 1, 1) + timedelta(days=i) for i in range(365)]
WARNED = {date(2013, 3, 3), date(2013, 7, 4), date(2013, 11, 28)}  # validated with warnings
BAD = date(2013, 6, 15)  # flights quarantined
STREAM_OBJECTS_PER_DAY = 24  # one Firehose object an hour, each scored to its own parquet
WARM_RUNS = 7


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_year(bucket: str, feature_set: str, model_name: str) -> int:
    """Write the year's keys straight into moto's store; returns how many keys."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    backend.create_bucket(bucket, "us-east-1")
    objects: dict[str, bytes] = {}
    for day in DAYS:
        dt = day.isoformat()
        for ds in DATASETS:
            manifest = catalog.landing_manifest_key(ds, dt, 1)
            objects[manifest] = lake.json_bytes({"dataset": ds, "dt": dt, "version": 1, "rows": 900})
            objects[catalog.landing_prefix(ds, dt, 1) + f"{ds}_{dt}.csv.gz"] = b"x" * 64
            bad = ds == "flights" and day == BAD
            warnings = [{"severity": "warning", "expectation": "expect_column_values_to_be_between",
                         "columns": ["dep_delay" if ds == "flights" else "wind_speed"], "unexpected_count": 3}] if day in WARNED else []
            result = {"passed": not bad, "row_count": 900, "run_id": "scheduled__1", "warnings": warnings,
                      "failures": [{"severity": "critical", "expectation": "expect_column_values_to_be_in_set",
                                    "columns": ["origin"], "unexpected_count": 50}] if bad else []}
            objects[catalog.quality_result_key(ds, dt, 1)] = lake.json_bytes(result)
            if bad:
                objects[catalog.quality_quarantine_prefix(ds, dt, 1) + catalog.REASON] = lake.json_bytes(
                    {"stage": "quality", "failures": result["failures"]})
            else:
                objects[catalog.validated_pointer_key(ds, dt)] = lake.json_bytes(
                    {"dataset": ds, "dt": dt, "version": 1, "rows": 900, "warnings": len(warnings),
                     "manifest_uri": lake.s3_uri(bucket, manifest), "run_id": "scheduled__1"})
        for part, build in ((catalog.features_partition(feature_set, dt), "b1"),
                            (catalog.predictions_partition(model_name, dt), catalog.predictions_build("1", "d1"))):
            parts = [catalog.build_prefix(part, build) + catalog.part_name(0)]
            objects[part + catalog.MANIFEST] = lake.json_bytes({"dt": dt, "parts": parts, "build": build})
            objects[part + catalog.SUCCESS] = b""
            objects[parts[0]] = b"p" * 64
        for hour in range(STREAM_OBJECTS_PER_DAY):
            objects[catalog.stream_predictions_key(model_name, dt, f"stream/flights/{dt}/{hour:02d}/o")] = b"s"
    for key, body in objects.items():
        backend.put_object(bucket, key, body)
    return len(objects)


def start_emulator(state_file: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "contrail.stack.emulator", "--port", str(port),
                             "--state-file", str(state_file)], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the emulator logs once it listens
        if "listening" in line:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc
    raise RuntimeError(f"the emulator exited with {proc.wait()}")


def serve_plugin(port: int, warm_up: "threading.Event | None" = None) -> str:
    """The plugin's app under uvicorn in a thread; returns a bearer token Airflow issued. With
    ``warm_up``, the root app carries the plugin's warm-up middleware, which sets the event when
    its warm-up is done."""
    import uvicorn
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi import FastAPI

    from airflow import settings as airflow_settings
    from airflow.models.revoked_token import RevokedToken

    from contrail.ui.app import URL_PREFIX, WarmUpOnFirstRequest, create_app

    # the one table a token check reads (a whole `airflow db migrate` is not needed to serve)
    RevokedToken.__table__.create(airflow_settings.engine, checkfirst=True)
    auth = init_auth_manager()
    token = auth.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    root, app = FastAPI(), create_app()
    root.mount(URL_PREFIX, app)
    if warm_up is not None:
        root.add_middleware(WarmUpOnFirstRequest, warm=lambda: (app.state.warm_up(), warm_up.set()),
                            name="Lake view warm-up")
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return token


def get_view(url: str, token: str, emulator: "psutil.Process") -> tuple[float, float, float, dict]:
    """(wall s, emulator CPU s, API server CPU s, the view) of one load."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    emulator_cpu, own_cpu = sum(emulator.cpu_times()[:2]), time.process_time()
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as resp:
        body = resp.read()
    elapsed = time.perf_counter() - started
    return (elapsed, sum(emulator.cpu_times()[:2]) - emulator_cpu, time.process_time() - own_cpu,
            json.loads(body))


def main() -> None:
    import psutil
    from moto import mock_aws

    from contrail.stack.emulator import _register_lock_pickling, snapshot_state

    settings = load_settings()
    state_file = Path(_HOME) / "emulator.pickle"
    with mock_aws():
        keys = build_year(settings.bucket, settings.feature_set, settings.model_name)
        _register_lock_pickling()
        state_file.write_bytes(pickle.dumps(snapshot_state(("s3",)), protocol=pickle.HIGHEST_PROTOCOL))
    emulator_port, api_port = _free_port(), _free_port()
    os.environ["CONTRAIL_EMULATOR_PORT"] = str(emulator_port)
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps({"conn_type": "aws", "extra": {
        "endpoint_url": f"http://127.0.0.1:{emulator_port}", "region_name": "us-east-1"}})
    emulator = start_emulator(state_file, emulator_port)
    try:
        token = serve_plugin(api_port)
        url = f"http://127.0.0.1:{api_port}/contrail/api/lake"
        requests = _request_counter()
        process = psutil.Process(emulator.pid)
        cold = get_view(url, token, process)
        cold_requests = requests()
        warm = []
        for _ in range(WARM_RUNS):
            *figures, view = get_view(url, token, process)
            warm.append((*figures, view["elapsed_s"], requests()))

        def median(i: int) -> float:
            return statistics.median(w[i] for w in warm)

        print(f"a year in the Lake view ({keys} keys in the bucket, emulator in its own process, "
              f"GET /contrail/api/lake over HTTP behind Airflow's auth; load average {os.getloadavg()[0]:.1f}):")
        print(f"  cold (first load): {cold[0]:.3f} s wall, CPU emulator {cold[1]:.3f} s / API {cold[2]:.3f} s, "
              f"{cold_requests}")
        print(f"  warm, median of {WARM_RUNS}: {median(0):.3f} s wall (min {min(w[0] for w in warm):.3f}, "
              f"max {max(w[0] for w in warm):.3f}; lake read {median(3):.3f} s), CPU emulator {median(1):.3f} s"
              f" / API {median(2):.3f} s, {warm[-1][4]}")
        print(f"  days {len(view['days'])}, flights {view['counts']['flights']}, "
              f"weather {view['counts']['weather']}")

        # a new API server with the warm-up middleware: its first request (the stack's health
        # check) starts the warm-up; a person's first load after it finds the pointers read
        warmed, warm_port = threading.Event(), _free_port()
        token = serve_plugin(warm_port, warmed)
        started = time.perf_counter()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{warm_port}/health", timeout=60)
        except urllib.error.HTTPError:
            pass  # any answer will do: the request went through the middleware
        if not warmed.wait(120):
            raise RuntimeError("the warm-up did not finish in 120 s")
        warm_up_s = time.perf_counter() - started
        warm_up_requests = requests()
        first = get_view(f"http://127.0.0.1:{warm_port}/contrail/api/lake", token, process)
        print(f"  a new API server with the warm-up middleware: warm-up {warm_up_s:.3f} s in the background "
              f"after its first request ({warm_up_requests}); then the first load {first[0]:.3f} s wall, "
              f"CPU emulator {first[1]:.3f} s / API {first[2]:.3f} s, {requests()}, "
              f"pointer GETs {first[3]['pointer_gets']}")
    finally:
        emulator.terminate()
        emulator.wait(30)


def _request_counter():
    """S3 requests since the last call, by operation (botocore's events, in this process)."""
    import boto3

    calls: list[str] = []
    boto3.DEFAULT_SESSION = None
    from botocore.session import Session

    original = Session.create_client

    def create_client(self, *args, **kwargs):
        client = original(self, *args, **kwargs)
        client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
        return client

    Session.create_client = create_client

    def since() -> str:
        counts: dict[str, int] = {}
        for name in calls:
            counts[name] = counts.get(name, 0) + 1
        calls.clear()
        return f"{sum(counts.values())} S3 requests " + json.dumps(counts, sort_keys=True)

    return since


if __name__ == "__main__":
    main()
