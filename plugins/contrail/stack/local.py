"""Start, stop and inspect the embedded local stack.

Components, all bound to loopback, all state under ``settings.state_dir`` (``.contrail/``):

* ``emulator`` — moto server for S3 / SQS / Firehose / EMR, snapshotted to disk;
* ``mlflow`` — tracking server and registry on SQLite, artifacts in a local directory,
  job workers off (they cost ~10 processes and 2.5 GB), one process
  (:mod:`contrail.stack.mlflow_server`);
* ``spark-connect`` — a Spark Connect server (``local[2]``, 512 MB driver): the micro-batch
  tasks run the batch transforms on it instead of starting a JVM per run (8-30 s each);
* ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` — Airflow 3 on SQLite with
  the LocalExecutor, parallelism sized for 2 cores.

On the ``scaleout`` profile (``CONTRAIL_PROFILE=scaleout``, see :mod:`contrail.stack.scaleout`)
Airflow and MLflow keep their state in PostgreSQL, the scheduler hands tasks to Redis, and two
``celery-worker-*`` components run them.

``start()`` supervises what it starts (:mod:`contrail.stack.supervisor`): a component that
dies is restarted with a bounded back-off for as long as the starting process runs
(``contrail stack up``, or the test session); ``stop()`` ends supervision before it stops anything.

Connections reach Airflow only as ``AIRFLOW_CONN_*`` environment variables built here; the
generated secrets (Airflow password, JWT and API keys) live in ``.contrail/secrets.json``,
which is created on first start and never committed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import importlib.util
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from contrail.settings import REPO_ROOT, Settings
from contrail.stack import scaleout
from contrail.stack.preload import airflow_argv
from contrail.stack.supervisor import AdoptedProcess, Supervisor
from contrail.stack.state import AIRFLOW_USER, airflow_password, ensure_secrets, paths  # noqa: F401 - re-exported


# glibc's malloc for the emulator, whose request threads allocate each S3 object's bytes: large
# buffers mapped and unmapped on their own (a fixed threshold; glibc otherwise raises it as
# buffers are freed, and later ones come from arenas that keep their freed pages) and two
# arenas, not 16. A synthetic 1.1 GB lake's emulator: 1,022 -> 297 MiB PSS once snapshotted
# (bench/bench_emulator.py)
EMULATOR_MALLOC = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}
# two cores: a landing task instance is mostly waiting on S3 and on Airflow's API, so six
# concurrent tasks keep both cores busy (89 days of catch-up: landing done at 104 s with six,
# 139 s with four) without 32 idle workers
PARALLELISM = 6


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    # False: start it and go on with the next component; start() waits for it at the end
    blocking: bool = True
    # what this component's environment adds to the stack's
    env: dict[str, str] = field(default_factory=dict)


class StackError(RuntimeError):
    pass


# ---------------------------------------------------------------------------- environment

def stack_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every component and every task of the local stack runs with."""
    if not settings.is_local:
        raise StackError("the embedded stack runs only with CONTRAIL_ENV=local")
    p = paths(settings)
    sec = ensure_secrets(settings)
    emulator = settings.emulator_url
    airflow = settings.airflow_url
    env = dict(os.environ if base is None else base)
    venv_bin = str(Path(sys.executable).parent)
    env.update({
        "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        "CONTRAIL_ENV": "local",
        "CONTRAIL_STATE_DIR": str(settings.state_dir),
        "CONTRAIL_BUCKET": settings.bucket,
        "CONTRAIL_AIRFLOW_PORT": str(settings.ports.airflow),
        "CONTRAIL_MLFLOW_PORT": str(settings.ports.mlflow),
        "CONTRAIL_EMULATOR_PORT": str(settings.ports.emulator),
        # the emulator accepts any key; these are placeholders, not secrets
        "AWS_ACCESS_KEY_ID": "contrail-local",
        "AWS_SECRET_ACCESS_KEY": "contrail-local",
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_ENDPOINT_URL": str(emulator),
        "MLFLOW_TRACKING_URI": settings.mlflow_url,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_HOME": _spark_home(),
        "SPARK_LOCAL_IP": settings.host,  # the Spark driver binds loopback, not the host's address
        "CONTRAIL_SPARK_CONNECT_PORT": str(settings.ports.spark_connect),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        # Airflow
        "AIRFLOW_HOME": str(p["airflow_home"]),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(PARALLELISM),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(p["passwords"]),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{airflow}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{p['airflow_home'] / 'airflow.db'}",
        "AIRFLOW__API__HOST": settings.host,
        "AIRFLOW__API__PORT": str(settings.ports.airflow),
        "AIRFLOW__API__BASE_URL": airflow,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1200",
        # a task whose process died (a killed worker or scheduler) is failed, then retried elsewhere,
        # once its heartbeat is this old
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(settings.task_heartbeat_timeout_s),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL":
            str(max(1, min(10, settings.task_heartbeat_timeout_s // 3))),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(settings.ports.airflow + 13),
        "AIRFLOW__TRIGGERER__WORKER_LOG_SERVER_PORT": str(settings.ports.airflow + 14),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws",
            "login": "contrail-local",
            "password": "contrail-local",
            "extra": {"endpoint_url": emulator, "region_name": settings.region},
        }),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({
            "conn_type": "http", "host": settings.host, "port": settings.ports.mlflow, "schema": "http",
        }),
        "CONTRAIL_PROFILE": settings.profile,
    })
    if settings.scaleout is not None:
        env.update(scaleout.airflow_env(settings))
    return env


def _spark_home() -> str:
    """The pip-installed pyspark directory (its ``bin/`` and ``jars/`` are a Spark home)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("pyspark is not installed in this environment; run `make venv`")
    return str(Path(list(spec.submodule_search_locations)[0]))


def write_passwords_file(settings: Settings) -> None:
    p = paths(settings)
    p["passwords"].parent.mkdir(parents=True, exist_ok=True)
    p["passwords"].write_text(json.dumps({AIRFLOW_USER: airflow_password(settings)}))
    p["passwords"].chmod(0o600)


# ---------------------------------------------------------------------------- components

def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback only)
            return resp.status < 500
    except (urllib.error.URLError, OSError):
        return False


def _always() -> bool:
    return True


def components(settings: Settings) -> list[Component]:
    p = paths(settings)
    py = sys.executable
    bin_dir = Path(py).parent
    airflow = str(bin_dir / "airflow")
    host, ports = settings.host, settings.ports
    mlflow_store = (settings.scaleout.mlflow_backend_uri if settings.scaleout
                    else f"sqlite:///{p['mlflow'] / 'mlflow.db'}")
    workers = [] if settings.scaleout is None else [
        Component(name, scaleout.worker_argv(settings, name, queues), _always, env=scaleout.worker_env(name))
        for name, queues in scaleout.workers(settings)]
    return [
        Component("emulator", [py, "-m", "contrail.stack.emulator", "--host", host,
                               "--port", str(ports.emulator), "--state-file", str(p["emulator_state"])],
                  lambda: _http_ok(f"http://{host}:{ports.emulator}/moto-api/"), env=EMULATOR_MALLOC),
        Component("spark-connect", [
            str(bin_dir / "spark-submit"),
            "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name", "contrail-spark-connect", "--master", "local[2]",
            "--driver-memory", "512m",
            # a heap that grows as builds need it and is handed back after them: the serial
            # collector shrinks to 30% free at each full collection, where G1 kept the 512 MB it
            # once reached (the server's peak over 59 days of builds: 821 -> 613 MiB PSS)
            "--driver-java-options", "-XX:+UseSerialGC -Xms64m -XX:MinHeapFreeRatio=10 "
                                     "-XX:MaxHeapFreeRatio=30 -XX:ReservedCodeCacheSize=96m",
            "--conf", f"spark.connect.grpc.binding.address={host}",
            "--conf", f"spark.connect.grpc.binding.port={ports.spark_connect}",
            "--conf", f"spark.driver.bindAddress={host}",
            "--conf", f"spark.driver.host={host}",
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.sql.session.timeZone=UTC",
            # what the feature job sets on its session, also the default of a session the server
            # creates after a restart, when a client's retried request resumes a build
            "--conf", "spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS",
            "--conf", "spark.sql.shuffle.partitions=2",
            "--conf", f"spark.local.dir={p['spark_connect']}",
        ], lambda: _port_open(host, ports.spark_connect), blocking=False),
        # one process: the ``mlflow server`` command line, become its uvicorn (mlflow_server.py)
        Component("mlflow", [py, "-m", "contrail.stack.mlflow_server", "server", "--host", host, "--port", str(ports.mlflow),
                             "--backend-store-uri", mlflow_store,
                             "--artifacts-destination", str(p["mlflow"] / "artifacts"),
                             "--workers", "1"],
                  lambda: _http_ok(f"http://{host}:{ports.mlflow}/health")),
        Component("api-server", [airflow, "api-server", "--host", host, "--port", str(ports.airflow),
                                 "--workers", "1"],
                  lambda: _http_ok(f"http://{host}:{ports.airflow}/api/v2/monitor/health")),
        # the LocalExecutor forks its workers, and they each task process, from the scheduler
        Component("scheduler", airflow_argv(settings, "scheduler", "--skip-serve-logs",
                                            forks_tasks=settings.scaleout is None), _always),
        *workers,
        Component("dag-processor", [airflow, "dag-processor"], _always),
        Component("triggerer", [airflow, "triggerer", "--skip-serve-logs"], _always),
    ]


def _pid_file(settings: Settings, name: str) -> Path:
    return paths(settings)["run"] / f"{name}.pid"


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if AdoptedProcess(pid).poll() is not None:  # gone, or a zombie (which kill(pid, 0) accepts)
        _reap(pid)
        return None
    return pid


def running(settings: Settings) -> dict[str, int]:
    out = {}
    for comp in components(settings):
        pid = _read_pid(_pid_file(settings, comp.name))
        if pid:
            out[comp.name] = pid
    return out


def _wait(predicate: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen | None,
          log_file: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = log_file.read_text()[-3000:] if log_file and log_file.exists() else ""
            raise StackError(f"{what} exited with {proc.returncode}; log tail:\n{tail}")
        time.sleep(0.5)
    raise StackError(f"{what} not ready after {timeout:.0f}s (see {log_file})")


def migrate_airflow_db(settings: Settings, env: dict[str, str]) -> None:
    p = paths(settings)
    log = p["logs"] / "airflow-db-migrate.log"
    with log.open("ab") as fh:
        proc = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                              env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise StackError(f"airflow db migrate failed; see {log}")


# state dir -> the supervisor of the stack this process started
_SUPERVISORS: dict[Path, Supervisor] = {}


def _spawn(settings: Settings, comp: Component, env: dict[str, str]) -> subprocess.Popen:
    """Start one component in its own session, its output appended to its log file."""
    log_file = paths(settings)["logs"] / f"{comp.name}.log"
    with log_file.open("ab") as fh:
        proc = subprocess.Popen(comp.argv, env={**env, **comp.env}, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=str(settings.state_dir))
    _pid_file(settings, comp.name).write_text(str(proc.pid))
    return proc


def _supervise(settings: Settings, env: dict[str, str], procs: dict[str, Any]) -> Supervisor:
    by_name = {c.name: c for c in components(settings)}

    def restarted(name: str) -> None:
        if name == "emulator":  # a restarted emulator may have lost what came after its snapshot
            _wait(by_name[name].ready, name, 60, None, None)
            from contrail.stack.bootstrap import bootstrap

            bootstrap(settings)

    sup = Supervisor(lambda name: _spawn(settings, by_name[name], env), paths(settings)["supervision"],
                     on_restarted=restarted)
    for name, proc in procs.items():
        sup.watch(name, proc)
    return sup.start()


def start(settings: Settings, *, timeout: float = 180.0) -> dict[str, int]:
    """Start every component not already running and supervise them all; returns name -> pid.
    Idempotent."""
    p = paths(settings)
    for key in ("airflow_home", "mlflow", "spark_connect", "logs", "run"):
        p[key].mkdir(parents=True, exist_ok=True)
    (p["mlflow"] / "artifacts").mkdir(parents=True, exist_ok=True)
    p["emulator_state"].parent.mkdir(parents=True, exist_ok=True)
    env = stack_env(settings)
    write_passwords_file(settings)
    already = running(settings)
    for comp in components(settings):
        if comp.name in already:
            continue
        if comp.ready is not _always and comp.ready():  # a component with a port of its own
            raise StackError(f"port for {comp.name} is already in use by another process; "
                             "set CONTRAIL_*_PORT to move the stack")
    if settings.scaleout is not None and len(already) < len(components(settings)):
        scaleout.ensure_databases(settings)
    started: dict[str, int] = dict(already)
    procs: dict[str, Any] = {name: AdoptedProcess(pid) for name, pid in already.items()}
    pending: list[tuple[Component, subprocess.Popen, Path]] = []
    for comp in components(settings):
        if comp.name in started:
            continue
        if comp.name == "api-server":
            # the Airflow DB must exist before any Airflow component; bootstrap the lake first
            migrate_airflow_db(settings, env)
        log_file = p["logs"] / f"{comp.name}.log"
        proc = _spawn(settings, comp, env)
        started[comp.name] = proc.pid
        procs[comp.name] = proc
        if not comp.blocking:
            pending.append((comp, proc, log_file))
            continue
        _wait(comp.ready, comp.name, timeout, proc, log_file)
        if comp.name == "emulator":
            from contrail.stack.bootstrap import bootstrap

            bootstrap(settings)
    for comp, proc, log_file in pending:
        _wait(comp.ready, comp.name, timeout, proc, log_file)
    old = _SUPERVISORS.pop(settings.state_dir, None)
    if old is not None:
        old.stop()
    _SUPERVISORS[settings.state_dir] = _supervise(settings, env, procs)
    return started


def supervision(settings: Settings) -> dict[str, dict]:
    """Per component: state, restarts, last exit, as the supervisor last recorded them."""
    from contrail.stack.supervisor import read_status

    return read_status(paths(settings)["supervision"])


def stop(settings: Settings, *, timeout: float = 30.0) -> list[str]:
    """End supervision, then SIGTERM each component's process group (reverse start order),
    SIGKILL stragglers."""
    sup = _SUPERVISORS.pop(settings.state_dir, None)
    if sup is not None:
        sup.stop()
    stopped = []
    for comp in reversed(components(settings)):
        pid_path = _pid_file(settings, comp.name)
        pid = _read_pid(pid_path)
        if pid is None:
            pid_path.unlink(missing_ok=True)
            continue
        if not _signal_and_wait(pid, pid_path, signal.SIGTERM, timeout, poll=0.2):
            # gone before this returns: a stack started next may take its port at once
            _signal_and_wait(pid, pid_path, signal.SIGKILL, 10.0, poll=0.1)
        pid_path.unlink(missing_ok=True)
        stopped.append(comp.name)
    return stopped


def _signal_and_wait(pid: int, pid_path: Path, sig: int, timeout: float, *, poll: float) -> bool:
    """Send ``sig`` to the process group ``pid`` leads and wait up to ``timeout`` seconds for
    the process to be gone; returns whether it is."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _read_pid(pid_path) is not None:
        _reap(pid)
        time.sleep(poll)
    return _read_pid(pid_path) is None


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_for_dags(settings: Settings, dag_ids: list[str], *, timeout: float = 180.0) -> None:
    """Block until the dag-processor has serialized every DAG in ``dag_ids``."""
    from contrail.stack.api import AirflowClient

    client = AirflowClient.for_local(settings)
    deadline = time.monotonic() + timeout
    missing = set(dag_ids)
    while time.monotonic() < deadline:
        missing = set(dag_ids) - client.dag_ids()
        if not missing:
            return
        time.sleep(2)
    raise StackError(f"DAGs not parsed after {timeout:.0f}s: {sorted(missing)}; "
                     f"see {paths(settings)['logs'] / 'dag-processor.log'}")


def component_trees(settings: Settings) -> Iterator[tuple[str, Any, list[Any]]]:
    """(name, process, live children) of each running component (psutil objects); a component
    gone meanwhile is left out."""
    import psutil

    for name, pid in running(settings).items():
        try:
            root = psutil.Process(pid)
            yield name, root, root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue


def _measure(proc: Any, measure: Callable[[Any], float]) -> float:
    """``measure(proc)``, or 0 for a process that ended or hides itself meanwhile."""
    import psutil

    try:
        return measure(proc)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def stack_processes(settings: Settings) -> list[Any]:
    """Every live process of the stack: each component and all its children (psutil objects)."""
    return [proc for _, root, children in component_trees(settings) for proc in (root, *children)]


def _pss(proc: Any) -> float:
    info = proc.memory_full_info()
    return getattr(info, "pss", info.rss)


def _own_cpu(proc: Any) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _reaped_cpu(proc: Any) -> float:
    """CPU seconds of the children a process has waited for."""
    t = proc.cpu_times()
    return t.children_user + t.children_system


def memory_by_component(settings: Settings) -> dict[str, float]:
    """PSS (RSS where PSS is unavailable) of each component with all its children, in MiB."""
    return {name: sum(_measure(p, _pss) for p in (root, *children)) / 2**20
            for name, root, children in component_trees(settings)}


def cpu_by_component(settings: Settings) -> dict[str, float]:
    """CPU seconds (user + system) each component has used so far: its own process as
    ``<name>``, and as ``<name> children`` its live children and those it has reaped (the
    scheduler's LocalExecutor workers and their task processes, a Celery worker's pool)."""
    out: dict[str, float] = {}
    for name, root, children in component_trees(settings):
        out[name] = _measure(root, _own_cpu)
        reaped = _measure(root, _reaped_cpu) + sum(
            _measure(p, _own_cpu) + _measure(p, _reaped_cpu) for p in children)
        if reaped:
            out[f"{name} children"] = reaped
    return out


def memory_mb(settings: Settings) -> float:
    """Resident memory (PSS where available) of every process of the stack, in MiB."""
    return sum(memory_by_component(settings).values())


def listening_addresses(settings: Settings) -> set[tuple[str, int]]:
    """(address, port) of every listening socket held by the stack's processes."""
    import psutil

    found: set[tuple[str, int]] = set()
    for proc in stack_processes(settings):
        try:
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return found


def reset(settings: Settings) -> None:
    """Delete all local state (after stopping). Used by ``make clean-state``."""
    if running(settings):
        raise StackError("stop the stack first (make down)")
    if settings.scaleout is not None:
        scaleout.drop_databases(settings)
        scaleout.flush_broker(settings)  # a stale Celery message would run in the next stack
    shutil.rmtree(settings.state_dir, ignore_errors=True)
