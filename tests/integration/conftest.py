"""The real local stack for end-to-end tests: emulator, MLflow server, Spark Connect server and the Airflow
scheduler / dag-processor / triggerer / api-server, on their own ports and state directory so
a developer's running stack is never touched. Started once per session, stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

E2E_PORTS = {"CONTRAIL_AIRFLOW_PORT": "18080", "CONTRAIL_MLFLOW_PORT": "15000",
             "CONTRAIL_EMULATOR_PORT": "14566", "CONTRAIL_SPARK_CONNECT_PORT": "15102"}


@pytest.fixture(scope="session")
def stack_settings():
    state = Path(tempfile.mkdtemp(prefix="contrail-e2e-"))
    saved = {k: os.environ.get(k) for k in [*E2E_PORTS, "CONTRAIL_STATE_DIR"]}
    os.environ.update(E2E_PORTS)
    os.environ["CONTRAIL_STATE_DIR"] = str(state)
    from contrail.settings import load_settings

    yield load_settings()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if os.environ.get("CONTRAIL_KEEP_E2E_STATE") != "1":
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(stack_settings):
    """A running local stack; logs are printed if it fails to start."""
    from contrail.stack import local

    try:
        local.start(stack_settings)
    except Exception:
        for log in sorted((stack_settings.state_dir / "logs").glob("*.log")):
            print(f"==== {log.name}\n{log.read_text()[-3000:]}")
        local.stop(stack_settings)
        raise
    yield stack_settings
    local.stop(stack_settings)
