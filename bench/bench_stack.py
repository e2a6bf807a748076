"""Local stack figures: start-up time, idle memory, peak memory while 3 days of 2013 run through
every stage, and the pipeline's wall time. Uses its own state dir and ports (a developer's
stack is untouched). Prints one figure per line.

    .venv/bin/python bench/bench_stack.py [--days 3] [--profile embedded|scaleout]

On ``scaleout`` the stack gets its own PostgreSQL databases (dropped at the end) and Redis db 13.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import date, timedelta


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--profile", choices=["embedded", "scaleout"], default="embedded")
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="contrail-bench-stack-")
    os.environ.update({"CONTRAIL_STATE_DIR": state, "CONTRAIL_AIRFLOW_PORT": "28080",
                       "CONTRAIL_MLFLOW_PORT": "25000", "CONTRAIL_EMULATOR_PORT": "24566",
                       "CONTRAIL_SPARK_CONNECT_PORT": "25002", "CONTRAIL_PROFILE": args.profile,
                       "CONTRAIL_REDIS_DB": "13"})
    for service_url in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                        "AIRFLOW__CELERY__RESULT_BACKEND", "CONTRAIL_MLFLOW_BACKEND_URI"):
        os.environ.pop(service_url, None)  # derived from the bench's own state dir
    from contrail.demo import MemorySampler, run_pipeline
    from contrail.settings import load_settings
    from contrail.stack import local

    settings = load_settings()
    days = [date(2013, 1, 1) + timedelta(days=i) for i in range(args.days)]
    t0 = time.monotonic()
    local.start(settings)
    started = time.monotonic() - t0
    time.sleep(20)  # let the scheduler and dag-processor settle before "idle"
    idle = local.memory_mb(settings)
    try:
        with MemorySampler(settings, interval=1.0) as mem:
            t1 = time.monotonic()
            run_pipeline(settings, days, log=lambda *_: None)
            wall = time.monotonic() - t1
    finally:
        local.stop(settings)
        local.reset(settings)  # the state dir, and on scaleout its databases
        shutil.rmtree(state, ignore_errors=True)
    print(f"profile: {settings.profile}")
    print(f"stack start-up (cold state, incl. airflow db migrate): {started:.1f} s")
    print(f"stack memory idle (PSS): {idle:.0f} MiB")
    print(f"stack memory peak during {args.days}-day pipeline (PSS): {mem.peak:.0f} MiB")
    print(f"pipeline wall time for {args.days} days, drop -> predictions: {wall:.1f} s")


if __name__ == "__main__":
    main()
