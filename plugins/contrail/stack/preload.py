"""Run an Airflow command with the task code already imported, so every task process starts warm.

Airflow 3 runs each task instance in a process forked from its executor's worker: the
LocalExecutor's workers are forked from the scheduler, a Celery worker's pool processes from the
worker's main process. The task process then loads the plugins folder (the Task SDK's listener
manager imports every plugin, and with it the UI plugin's FastAPI app), imports its DAG file and
the task's code, and throws all of it away when the task ends. A landed day paid 3-5 s of that
for 0.1 s of landing; a quality run or a features gate paid 12-18 s more for Great Expectations
before judging anything. Done once here, before Airflow forks anything, it is inherited by
every task process (copy-on-write), the way Celery's ``--preload`` and gunicorn's
``preload_app`` share an application, and the way Airflow's own DAG processor pre-imports what
DAG files import (``[dag_processor] parsing_pre_import_modules``).

Only modules that start no thread and no native thread pool on import are listed: a fork
copies one thread. MLflow and scikit-learn (OpenMP) stay out: training and scoring are a few
task instances a week, and their runtimes are not fork-safe to share.

    python -m contrail.stack.preload scheduler --skip-serve-logs   # LocalExecutor (embedded)
    python -m contrail.stack.preload celery worker --queues default  # a Celery worker (scale-out)

``CONTRAIL_TASK_PRELOAD=0`` (settings) starts the plain ``airflow`` command instead.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contrail.settings import Settings

TASK_MODULES: tuple[str, ...] = (
    # what every DAG file imports at parse time, and the landing task's client
    "boto3",
    "airflow.providers.amazon.aws.hooks.s3",
    "airflow.providers.amazon.aws.sensors.s3",
    "airflow.providers.common.messaging.triggers.msg_queue",
    "airflow.providers.standard.operators.trigger_dagrun",
    "contrail.assets",
    "contrail.catalog",
    "contrail.dag_defaults",
    "contrail.families",
    "contrail.reruns",
    "contrail.sensors",
    "contrail.settings",
    "contrail.stream.events",
    "contrail.stages.landing",
    # quality, the features plan and gate, scoring and the stream read partitions with pandas
    "pandas",
    "pyarrow.parquet",
    "contrail.stages.quality",
    "contrail.stages.features",
    # the quality task and the features gate judge with Great Expectations
    "great_expectations",
    "contrail.quality",
    "contrail.quality_batch",
)


def preload(modules: tuple[str, ...] = TASK_MODULES) -> float:
    """Import ``modules`` and load the plugins folder the way a task process does; returns the
    seconds it took. Raises if any of it started a thread."""
    started = time.perf_counter()
    gx_log = logging.getLogger("great_expectations")
    level = gx_log.level
    gx_log.setLevel(logging.WARNING)  # GX logs every class it registers on import
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        gx_log.setLevel(level)
    # the AWS clients' service models, parsed once here instead of in every task process
    from contrail.aws_hooks import warm

    warm()
    # cached for the process: the task runner's first call (its on_starting hook) is then free
    from airflow.sdk.listener import get_listener_manager

    get_listener_manager()
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        raise RuntimeError(f"preloading started threads {threads}: a fork would copy only one of them")
    return time.perf_counter() - started


def airflow_argv(settings: "Settings", *args: str, forks_tasks: bool) -> list[str]:
    """The command line of an Airflow command; one whose process task processes are forked from
    starts through this module, with the task code imported, unless ``CONTRAIL_TASK_PRELOAD=0``."""
    if forks_tasks and settings.task_preload:
        return [sys.executable, "-m", "contrail.stack.preload", *args]
    return [str(Path(sys.executable).parent / "airflow"), *args]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    took = preload()
    print(f"contrail: task modules preloaded in {took:.1f} s ({len(TASK_MODULES)} modules)", file=sys.stderr,
          flush=True)
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *argv]
    airflow_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
