"""The scale-out profile end to end: PostgreSQL metadata DB and registry, the CeleryExecutor on
Redis, two workers (only one serves the ``spark`` queue). The thin pipeline and the
stop/start test are the embedded suite's own tests, run here on this module's stack; then a
worker killed with ``kill -9`` in the middle of a task loses no partition.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest

from contrail import catalog, lake

from .lake_shape import partition_shape
from .test_pipeline_e2e import (  # noqa: F401 - collected here again, on this module's stack
    DAYS,
    pipeline_run,
    test_pipeline_runs_end_to_end_through_airflow,
)

pytestmark = pytest.mark.e2e
STACK_PROFILE = "scaleout"

# the day after the pipeline's days: landing runs wait for their days in order (catch-up,
# two active runs), so a later day would wait behind days never dropped
KILL_DAY = DAYS[-1] + timedelta(days=1)
# tasks that run long enough on a worker to be killed in the middle
# the feature build: a Spark job of tens of seconds. A warm quality task judges a day in about a
# second, so it can finish between the listing that finds it running and the kill (seen in CI)
KILLABLE = {("features", "build")}


def test_tasks_ran_on_both_workers_and_spark_only_on_its_queue(stack, pipeline_run):
    from contrail.stack.api import AirflowClient

    tis = AirflowClient.for_local(stack).request(
        "GET", "/dags/~/dagRuns/~/taskInstances", params={"limit": 1000})["task_instances"]
    ran = [t for t in tis if t["state"] == "success"]
    assert {t["hostname"] for t in ran} >= {"celery-worker-1", "celery-worker-2"}
    builds = [t for t in ran if (t["dag_id"], t["task_id"]) == ("features", "build")]
    assert builds and {(t["queue"], t["hostname"]) for t in builds} == {("spark", "celery-worker-1")}


def _running_killable(api) -> dict | None:
    tis = api.request("GET", "/dags/~/dagRuns/~/taskInstances",
                      params={"state": "running", "limit": 100})["task_instances"]
    return next((t for t in tis if (t["dag_id"], t["task_id"]) in KILLABLE
                 and (t.get("hostname") or "").startswith("celery-worker")), None)


# a task the killed worker had received but not yet started is still ``queued`` in Airflow's
# database: no heartbeat check covers it, and the scheduler sends it again only after
# [scheduler] task_queued_timeout (1,200 s here), so this test may need longer than the default
@pytest.mark.timeout(3600)
def test_a_worker_killed_mid_task_loses_no_partition(stack, pipeline_run):
    from contrail import nycflights
    from contrail.demo import wait_for
    from contrail.simulate import drop_days
    from contrail.stack import local
    from contrail.stack.api import AirflowClient

    api = AirflowClient.for_local(stack)
    s3 = lake.s3_client(stack)
    drop_days(s3, stack.bucket, [KILL_DAY])
    victim = wait_for(lambda: _running_killable(api), "the feature build running on a worker", 900,
                      poll=0.5)
    worker = victim["hostname"]
    pid = int((local.paths(stack)["run"] / f"{worker}.pid").read_text())
    os.killpg(pid, signal.SIGKILL)  # the whole "host": the worker and the task it runs

    features = catalog.features_partition(stack.feature_set, KILL_DAY) + catalog.SUCCESS
    # the retry waits for the heartbeat timeout (30 s here) and the retry delay, then the day
    # still goes through quality, a feature build and scoring: on a loaded 2-core machine that
    # took over 15 minutes
    wait_for(lambda: lake.exists(s3, stack.bucket, features), f"features for {KILL_DAY}", 1800)
    wait_for(lambda: catalog.published_one(s3, stack.bucket, catalog.predictions_partition(stack.model_name, KILL_DAY)),
             f"predictions for {KILL_DAY}", 600)

    ti = api.request("GET", f"/dags/{victim['dag_id']}/dagRuns/{victim['dag_run_id']}/taskInstances/"
                            f"{victim['task_id']}")
    # retried; a build whose run had nothing left to build (another run built the day) skips
    assert ti["state"] in ("success", "skipped") and ti["try_number"] > victim["try_number"], ti
    assert local.supervision(stack)[worker]["restarts"] >= 1
    # identical to an undisturbed day: one landed version each, validated once, built and scored once
    assert partition_shape(stack, s3, KILL_DAY) == partition_shape(stack, s3, DAYS[-1])
    built = catalog.published_one(s3, stack.bucket, catalog.features_partition(stack.feature_set, KILL_DAY))
    assert built.manifest["rows"] == len(nycflights.day("flights", KILL_DAY))
    print(f"killed {worker} running {victim['dag_id']}.{victim['task_id']}; "
          f"retried as try {ti['try_number']} on {ti['hostname']}")


# last: it restarts the stack, then checks everything above is still there
from .test_pipeline_e2e import test_stop_and_start_loses_nothing  # noqa: E402,F401
