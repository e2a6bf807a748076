"""Driving a stack from outside it, for the CLI and the demo: start it detached, stop it,
print where its UIs are. Process control itself is :mod:`contrail.stack.local`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from contrail.settings import Settings


def print_urls(settings: Settings) -> None:
    """Where the stack's UIs and services are, and the login."""
    from contrail.stack.state import AIRFLOW_USER, airflow_password, paths

    print(f"  Airflow UI   {settings.airflow_url}   user {AIRFLOW_USER}  password {airflow_password(settings)}")
    print(f"               (password file: {paths(settings)['passwords']})")
    print(f"  MLflow UI    {settings.mlflow_url}")
    print(f"  AWS emulator {settings.emulator_url}   bucket s3://{settings.bucket}")
    print(f"  Spark        {settings.spark_remote}   (Spark Connect: the stream tasks' Spark)")
    if settings.scaleout is not None:
        so = settings.scaleout
        print(f"  Airflow DB   {so.airflow_db_url}   (CeleryExecutor, broker {so.celery_broker_url})")
        print(f"  MLflow store {so.mlflow_backend_uri}")
    print(f"  state        {settings.state_dir}")


def up_detached(settings: Settings) -> int:
    """Start ``contrail stack up`` in the background and wait until it reports ready."""
    from contrail.stack import local

    p = local.paths(settings)
    p["logs"].mkdir(parents=True, exist_ok=True)
    log = p["logs"] / "stack.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "contrail.cli", "stack", "up"],
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + 300
    sup = p["run"] / "supervisor.pid"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(log.read_text()[-4000:], file=sys.stderr)
            return 1
        if local._read_pid(sup) == proc.pid:
            print("contrail stack is up (detached):")
            print_urls(settings)
            return 0
        time.sleep(0.5)
    print(f"stack did not come up in time; see {log}", file=sys.stderr)
    return 1


def down(settings: Settings) -> bool:
    """Stop a stack started by ``contrail stack up`` (its foreground process first, so its
    supervisor does not restart what is stopped); returns whether anything was running."""
    from contrail.stack import local

    sup = local.paths(settings)["run"] / "supervisor.pid"
    pid = local._read_pid(sup)
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(120):
            if local._read_pid(sup) is None:
                break
            time.sleep(0.5)
    stopped = local.stop(settings)
    return bool(pid or stopped)
