"""Warm task processes: which Airflow commands start through ``contrail.stack.preload``, and that
the modules it imports start no thread (the premise of sharing them with forked task processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from contrail.settings import REPO_ROOT, load_settings
from contrail.stack import local
from contrail.stack.preload import TASK_MODULES, airflow_argv

EMBEDDED = {"CONTRAIL_STATE_DIR": "/tmp/contrail-unit-preload"}
SCALEOUT = {**EMBEDDED, "CONTRAIL_PROFILE": "scaleout", "CONTRAIL_REDIS_DB": "9"}


def _argv(env: dict[str, str]) -> dict[str, list[str]]:
    return {c.name: c.argv for c in local.components(load_settings(env))}


def _preloaded(argv: list[str]) -> bool:
    return argv[1:3] == ["-m", "contrail.stack.preload"]


def test_the_embedded_scheduler_forks_the_tasks_so_it_starts_preloaded():
    argv = _argv(EMBEDDED)
    assert _preloaded(argv["scheduler"]) and argv["scheduler"][3:] == ["scheduler", "--skip-serve-logs"]
    # nothing else forks task processes: the other Airflow components start as plain commands
    assert not [name for name, a in argv.items() if name != "scheduler" and _preloaded(a)]


def test_on_scale_out_the_workers_start_preloaded_and_the_scheduler_does_not():
    argv = _argv(SCALEOUT)
    workers = [name for name in argv if name.startswith("celery-worker")]
    assert len(workers) == 2 and all(_preloaded(argv[w]) for w in workers)
    assert argv["celery-worker-1"][3:5] == ["celery", "worker"]
    assert not _preloaded(argv["scheduler"])  # the CeleryExecutor forks no task


@pytest.mark.parametrize("env", [EMBEDDED, SCALEOUT])
def test_the_switch_turns_it_off(env):
    argv = _argv({**env, "CONTRAIL_TASK_PRELOAD": "0"})
    assert not [name for name, a in argv.items() if _preloaded(a)]
    assert argv["scheduler"][0].endswith("/airflow")


def test_the_switch_takes_only_0_or_1():
    with pytest.raises(ValueError, match="CONTRAIL_TASK_PRELOAD must be 0 or 1"):
        load_settings({"CONTRAIL_TASK_PRELOAD": "yes"})


def test_airflow_argv_for_a_command_that_forks_nothing_is_the_plain_cli():
    settings = load_settings(EMBEDDED)
    assert airflow_argv(settings, "triggerer", forks_tasks=False)[1:] == ["triggerer"]


def test_the_task_modules_and_plugins_load_in_a_fresh_process_without_starting_a_thread(tmp_path):
    # a fork copies only the forking thread: a module that starts one on import would leave
    # every task process with a half-copied runtime; preload() refuses that
    code = ("import sys; from contrail.stack.preload import preload, TASK_MODULES; preload(); "
            "missing = [m for m in TASK_MODULES if m not in sys.modules]; "
            "assert not missing, missing; "
            "assert 'contrail.ui.app' in sys.modules, 'the plugins folder was not loaded'; "
            "assert 'great_expectations' in sys.modules and 'mlflow' not in sys.modules; print('ok')")
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
           "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_the_dag_files_imports_are_preloaded():
    # what the DAG files import from contrail and the providers at parse time is in the list (a
    # new import in a DAG file that is missing here would be paid again by every task process)
    import ast

    imported = set()
    for dag_file in (REPO_ROOT / "dags").glob("*.py"):
        for node in ast.parse(dag_file.read_text()).body:
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith(("contrail", "airflow.providers")):
                imported |= {f"{module}.{a.name}" if module == "contrail" else module for a in node.names}
    assert imported and imported <= set(TASK_MODULES), sorted(imported - set(TASK_MODULES))
