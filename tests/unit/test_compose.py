"""docker-compose.yml checked against the code, without a Docker engine: every variable
settings.py reads is set (or its default is right in containers), clients reach services by
service name on the ports those services listen on, and every image is pinned.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from contrail.settings import REPO_ROOT, load_settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
SETTINGS_PY = REPO_ROOT / "plugins" / "contrail" / "settings.py"
# what a user puts in .env (secrets are never committed)
DOTENV = {"POSTGRES_PASSWORD": "pg-secret", "AIRFLOW_FERNET_KEY": "fernet", "AIRFLOW_JWT_SECRET": "jwt",
          "CONTRAIL_AIRFLOW_PASSWORD": "pw"}
AIRFLOW_SERVICES = ("airflow-init", "api-server", "scheduler", "dag-processor", "triggerer", "worker", "worker-spark")
# variables settings.py reads whose default is right inside the containers, and why
DEFAULT_IS_RIGHT = {
    "CONTRAIL_SPARK_RUNNER": "local: the feature job is a spark-submit on the worker serving `spark`",
    "CONTRAIL_MODEL_NAME": "the pipeline's own name for the model",
    "CONTRAIL_FEATURE_SET": "the pipeline's own feature set",
    "CONTRAIL_STREAM_DRAIN_IDLE_S": "a tuning knob, same as on one machine",
    "CONTRAIL_STACK_NAME": "aws mode only",
    "CONTRAIL_TASK_PRELOAD": "how `contrail stack` starts its processes; the workers' commands name the preload entry point",
    "CONTRAIL_AIRFLOW_PORT": "ports only build loopback URLs; the service URLs are set instead",
    "CONTRAIL_MLFLOW_PORT": "as above",
    "CONTRAIL_EMULATOR_PORT": "as above",
    "CONTRAIL_SPARK_CONNECT_PORT": "as above",
}
# stack_env (the embedded stack's environment) keys that belong to one host, not to containers
SINGLE_HOST_ONLY = {
    "PATH", "PYSPARK_PYTHON", "SPARK_HOME", "SPARK_LOCAL_IP", "NO_PROXY", "no_proxy", "AIRFLOW_HOME",
    "CONTRAIL_AIRFLOW_PORT", "CONTRAIL_MLFLOW_PORT", "CONTRAIL_EMULATOR_PORT", "CONTRAIL_SPARK_CONNECT_PORT",
    "AIRFLOW__API__HOST", "AIRFLOW__API__PORT",  # the api-server's command line says where it listens
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG", "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES",  # one-host tuning on 2 cores
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__TRIGGERER__WORKER_LOG_SERVER_PORT",  # one port per host
}
LOOPBACK = re.compile(r"127\.0\.0\.1|localhost|0\.0\.0\.0")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${NAME}``, ``${NAME:?message}``, ``${NAME:-default}`` and ``$$`` (pure)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name} must be set ({arg})")
        return arg or ""

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:\?|:-)([^}]*))?\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), DOTENV)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _conf(command: list[str], key: str) -> str:
    return next(c.split("=", 1)[1] for c in command if c.startswith(f"{key}="))


def settings_names() -> set[str]:
    """Every environment variable settings.py names (read, or named in its messages)."""
    return set(re.findall(r'"((?:CONTRAIL|AWS|AIRFLOW|MLFLOW)_[A-Z0-9_]+)"', SETTINGS_PY.read_text()))


def test_interpolate() -> None:
    env = {"A": "1"}
    assert interpolate("x${A}y${B:-d}$${C}", env) == "x1yd${C}"
    with pytest.raises(KeyError, match="B must be set"):
        interpolate("${B:?in .env}", env)


def test_every_variable_settings_reads_is_set_or_rightly_defaulted(compose: dict[str, Any]) -> None:
    names = settings_names()
    assert {"CONTRAIL_ENV", "CONTRAIL_BUCKET", "CONTRAIL_EMULATOR_URL"} <= names  # the scan works
    for name in AIRFLOW_SERVICES:
        env = _env(compose["services"][name])
        unset = sorted(n for n in names if n not in env and n not in DEFAULT_IS_RIGHT)
        assert not unset, f"{name}: settings.py reads {unset}, not set in docker-compose.yml"


def test_the_scale_out_switch_and_services_by_name(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        assert (env["CONTRAIL_ENV"], env["CONTRAIL_PROFILE"]) == ("local", "scaleout")
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        settings = load_settings(env)
        emulator, mlflow, airflow = (urlsplit(u) for u in (settings.emulator_url, settings.mlflow_url,
                                                            settings.airflow_url))
        spark = urlsplit(settings.spark_remote.replace("sc://", "http://"))
        assert (emulator.hostname, emulator.port) == ("moto", int(_flag(services["moto"]["command"], "--port")))
        assert (mlflow.hostname, mlflow.port) == ("mlflow", int(_flag(services["mlflow"]["command"], "--port")))
        assert (airflow.hostname, airflow.port) == ("api-server",
                                                    int(_flag(services["api-server"]["command"], "--port")))
        assert (spark.hostname, spark.port) == ("spark-connect", int(_conf(
            services["spark-connect"]["command"], "spark.connect.grpc.binding.port")))
        db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        backend = urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"])
        broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
        store = urlsplit(env["CONTRAIL_MLFLOW_BACKEND_URI"])
        assert {db.hostname, backend.hostname, store.hostname} == {"postgres"}
        assert (db.username, db.password, db.path) == (services["postgres"]["environment"]["POSTGRES_USER"],
                                                       DOTENV["POSTGRES_PASSWORD"], "/airflow")
        assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)
        assert env["CONTRAIL_MLFLOW_BACKEND_URI"] == _flag(services["mlflow"]["command"], "--backend-store-uri")
        conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
        assert conn["extra"]["endpoint_url"] == env["AWS_ENDPOINT_URL"] == settings.emulator_url
        mlflow_conn = json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"])
        assert f"http://{mlflow_conn['host']}:{mlflow_conn['port']}" == settings.mlflow_url == env["MLFLOW_TRACKING_URI"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{settings.airflow_url}/execution/"
    assert "CREATE DATABASE mlflow" in (REPO_ROOT / ".ci" / "compose-init.sql").read_text()


def test_no_client_is_pointed_at_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in _env(service).items():
            assert not LOOPBACK.search(value), f"{name}: {key}={value} points at loopback"
        command = service.get("command", [])
        command = command if isinstance(command, list) else [command]
        # a server may listen on all interfaces of its container; nothing may connect to loopback
        clients = [c for c in command if LOOPBACK.search(c) and c not in ("0.0.0.0",)
                   and not c.endswith("binding.address=0.0.0.0")]
        assert not clients, f"{name}: {clients}"


def test_the_embedded_stack_environment_is_covered(compose: dict[str, Any], tmp_path: Path) -> None:
    """Every variable the one-machine stack gives its components is given here too, with the
    service URLs settings.py derives from the compose environment."""
    from contrail.stack.local import stack_env

    env = _env(compose["services"]["scheduler"])
    settings = load_settings({**env, "CONTRAIL_STATE_DIR": str(tmp_path)})
    embedded = stack_env(settings, base={})
    missing = sorted(set(embedded) - set(env) - SINGLE_HOST_ONLY)
    assert not missing, f"docker-compose.yml lacks {missing}"
    for key in ("AWS_ENDPOINT_URL", "MLFLOW_TRACKING_URI", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                "AIRFLOW__API__BASE_URL"):
        assert env[key] == embedded[key], key


def test_ports_are_published_on_loopback_at_the_port_served(compose: dict[str, Any]) -> None:
    services = compose["services"]
    served = {"moto": int(_flag(services["moto"]["command"], "--port")),
              "mlflow": int(_flag(services["mlflow"]["command"], "--port")),
              "api-server": int(_flag(services["api-server"]["command"], "--port"))}
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert set(published) == set(served)
    for name, ports in published.items():
        for mapping in ports:
            host, host_port, container_port = mapping.split(":")
            assert host == "127.0.0.1", mapping
            assert int(container_port) == int(host_port) == served[name], mapping


PRELOADED = ["python", "-m", "contrail.stack.preload"]


def test_workers_and_queues(compose: dict[str, Any]) -> None:
    # Celery forks the task processes: each worker starts through the preload entry point,
    # which then runs `airflow celery worker …` (so dumb-init, not the image's `airflow` entrypoint)
    workers = {name: s["command"][len(PRELOADED):] for name, s in compose["services"].items()
               if s.get("command", [""])[:len(PRELOADED) + 2] == [*PRELOADED, "celery", "worker"]}
    assert len(workers) == 2
    assert all(compose["services"][name]["entrypoint"] == ["/usr/bin/dumb-init", "--"] for name in workers)
    queues = {name: set(_flag(cmd, "--queues").split(",")) for name, cmd in workers.items()}
    assert all("default" in q for q in queues.values())
    assert [name for name, q in queues.items() if "spark" in q] == ["worker-spark"]


def test_images_are_pinned_and_dependencies_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: image {image!r} is not pinned"
        for line in (service.get("build") or {}).get("dockerfile_inline", "").splitlines():
            if line.startswith("FROM "):
                base = line.split()[1]
                assert ":" in base and not base.endswith(":latest"), base
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert not {"minio"} & set(services)  # one emulator serves S3, SQS and Firehose
    assert compose["services"]["airflow-init"]["command"][0].endswith("contrail bootstrap && contrail bootstrap --check")


def test_service_urls_from_the_environment() -> None:
    named = load_settings({"CONTRAIL_EMULATOR_URL": "http://moto:4566/", "CONTRAIL_MLFLOW_URL": "http://mlflow:5000"})
    assert (named.emulator_url, named.mlflow_url) == ("http://moto:4566", "http://mlflow:5000")
    assert load_settings({}).emulator_url == "http://127.0.0.1:4566"  # loopback without them
    assert load_settings({"CONTRAIL_ENV": "aws", "CONTRAIL_EMULATOR_URL": "http://moto:4566"}).emulator_url is None
    with pytest.raises(ValueError, match="CONTRAIL_MLFLOW_URL must be an http"):
        load_settings({"CONTRAIL_MLFLOW_URL": "mlflow:5000"})
