"""Failure drills on a running local stack: ``kill -9`` of a component, of a running task's
process and of the JVM running the feature job, as an operator would rehearse them. Used by the
backfill benchmark and the end-to-end suite; each returns what it killed so the caller can
check that the supervisor and Airflow's retries brought it back.
"""

from __future__ import annotations

import signal
from typing import Any

from contrail.settings import Settings
from contrail.stack import local

# the feature job's driver: spark-submit of the contrail_spark entry (not the Connect server)
SPARK_JOB_MARKERS = ("contrail_spark", "main-")


def kill_component(settings: Settings, name: str) -> int:
    """``kill -9`` of one component's main process (as a person would: its pid, not its group)."""
    import os

    pid = local.running(settings)[name]
    os.kill(pid, signal.SIGKILL)
    return pid


def spark_job(settings: Settings, api: Any = None) -> Any | None:
    """The JVM running the feature job, while a build runs (psutil): the job's spark-submit
    driver, or the stack's Spark Connect server, which runs the builds when the stack has one,
    while ``api`` (an :class:`~contrail.stack.api.AirflowClient`) shows ``features.build`` running."""
    import psutil

    for proc in local.stack_processes(settings):
        try:
            cmd = " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "SparkSubmit" in cmd and "SparkConnectServer" not in cmd and any(m in cmd for m in SPARK_JOB_MARKERS):
            return proc
    if api is None or not settings.spark_remote:
        return None
    running = api.request("GET", "/dags/features/dagRuns/~/taskInstances",
                          params={"state": "running", "task_id": "build"})["task_instances"]
    pid = local.running(settings).get("spark-connect")
    return psutil.Process(pid) if running and pid else None


def kill_process(proc: Any) -> int:
    """SIGKILL a psutil process; returns its pid."""
    proc.send_signal(signal.SIGKILL)
    return proc.pid
