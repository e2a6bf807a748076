"""The real local stack for end-to-end tests: emulator, MLflow server, Spark Connect server and
the Airflow components, on their own ports, state directory and (scale-out) databases, so a
developer's running stack is never touched.

A module runs on the profile its ``STACK_PROFILE`` names (default ``embedded``). One stack
runs at a time: the embedded one is started once and shared by every embedded module; a
scale-out module stops it and gets a stack of its own (PostgreSQL databases named after its
own state dir, its own Redis db). Scale-out modules are collected last so the embedded stack
is started only once. Everything is stopped and removed at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

E2E_PORTS = {"CONTRAIL_AIRFLOW_PORT": "18080", "CONTRAIL_MLFLOW_PORT": "15000",
             "CONTRAIL_EMULATOR_PORT": "14566", "CONTRAIL_SPARK_CONNECT_PORT": "15102"}
PROFILE_ENV = {
    # a task killed in a failure drill is retried after 30 s, not Airflow's 5 minutes
    "embedded": {**E2E_PORTS, "CONTRAIL_PROFILE": "embedded", "CONTRAIL_TASK_HEARTBEAT_TIMEOUT_S": "30"},
    "scaleout": {"CONTRAIL_PROFILE": "scaleout",
                 "CONTRAIL_AIRFLOW_PORT": "18180", "CONTRAIL_MLFLOW_PORT": "15100",
                 "CONTRAIL_EMULATOR_PORT": "14666", "CONTRAIL_SPARK_CONNECT_PORT": "15202",
                 "CONTRAIL_REDIS_DB": "14",
                 # a killed worker's task is retried after 30 s, not Airflow's 5 minutes
                 "CONTRAIL_TASK_HEARTBEAT_TIMEOUT_S": "30"},
}
# CONTRAIL_E2E_PORT_OFFSET shifts every port (and the Redis db) so two checkouts can run their
# end-to-end suites side by side on one machine
_OFFSET = int(os.environ.get("CONTRAIL_E2E_PORT_OFFSET", "0"))
for _env in PROFILE_ENV.values():
    for _key, _value in _env.items():
        if _key.endswith("_PORT"):
            _env[_key] = str(int(_value) + _OFFSET)
    if "CONTRAIL_REDIS_DB" in _env:
        _env["CONTRAIL_REDIS_DB"] = str(int(_env["CONTRAIL_REDIS_DB"]) - _OFFSET // 100)
# service URLs a developer's shell may carry: the test stacks derive their own
SERVICE_URLS = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                "AIRFLOW__CELERY__RESULT_BACKEND", "CONTRAIL_MLFLOW_BACKEND_URI")


def _profile(item_or_module) -> str:
    return getattr(item_or_module, "STACK_PROFILE", "embedded")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: _profile(item.module) != "embedded")  # stable: order kept within


class StackPool:
    """At most one running test stack; each profile keeps its state dir for the session."""

    def __init__(self) -> None:
        keys = {k for env in PROFILE_ENV.values() for k in env} | {"CONTRAIL_STATE_DIR", *SERVICE_URLS}
        self._saved = {k: os.environ.get(k) for k in keys}
        self._states: dict[str, Path] = {}
        self._active = None  # (profile, settings)

    def get(self, profile: str):
        from contrail.settings import load_settings
        from contrail.stack import local

        if self._active and self._active[0] == profile:
            return self._active[1]
        self._stop_active()
        state = self._states.setdefault(profile, Path(tempfile.mkdtemp(prefix=f"contrail-e2e-{profile}-")))
        for key in SERVICE_URLS:
            os.environ.pop(key, None)
        os.environ.update(PROFILE_ENV[profile])
        os.environ["CONTRAIL_STATE_DIR"] = str(state)
        settings = load_settings()
        try:
            local.start(settings)
        except Exception:
            for log in sorted((settings.state_dir / "logs").glob("*.log")):
                print(f"==== {log.name}\n{log.read_text()[-3000:]}")
            local.stop(settings)
            raise
        self._active = (profile, settings)
        return settings

    def _stop_active(self) -> None:
        from contrail.stack import local

        if self._active:
            local.stop(self._active[1])
            self._active = None

    def close(self) -> None:
        from contrail.settings import load_settings
        from contrail.stack import local

        self._stop_active()
        keep = os.environ.get("CONTRAIL_KEEP_E2E_STATE") == "1"
        for profile, state in self._states.items():
            if not keep:
                settings = load_settings({**PROFILE_ENV[profile], "CONTRAIL_STATE_DIR": str(state)})
                local.reset(settings)  # removes the state dir and a scale-out stack's databases
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def stack_pool():
    pool = StackPool()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def stack(request, stack_pool):
    """A running local stack on the module's profile; logs are printed if it fails to start."""
    return stack_pool.get(_profile(request.module))
