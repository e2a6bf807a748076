"""The scale-out profile's part of the local stack: PostgreSQL databases, the Redis database
of its Celery broker, the Celery settings of every Airflow component, and the two Celery workers.

Two workers on one machine stand for two hosts: the first serves ``default`` and the
``spark`` queue (the edge node the feature job is routed to), the second only ``default``.
Each reports its own hostname, so a task instance says which "host" ran it. Neither starts
a log server: both write task logs into the stack's one log folder, which the api-server
reads directly.
"""

from __future__ import annotations

import os
import socket

from contrail.settings import ScaleOut, Settings
from contrail.stack.preload import airflow_argv

WORKER_HOSTNAME_ENV = "CONTRAIL_WORKER_HOSTNAME"


def workers(settings: Settings) -> list[tuple[str, list[str]]]:
    """(name, queues) of each Celery worker."""
    so = _require(settings)
    return [("celery-worker-1", ["default", so.spark_queue]), ("celery-worker-2", ["default"])]


def worker_argv(settings: Settings, name: str, queues: list[str]) -> list[str]:
    so = _require(settings)
    # a worker's pool processes, and each task process, are forked from its main process
    return [*airflow_argv(settings, "celery", "worker", forks_tasks=True), "--queues", ",".join(queues),
            "--concurrency", str(so.worker_concurrency),
            "--celery-hostname", f"{name}@{socket.gethostname()}",
            "--skip-serve-logs", "--without-gossip", "--without-mingle"]


def worker_env(name: str) -> dict[str, str]:
    """What differs per worker: the hostname its task instances record."""
    return {WORKER_HOSTNAME_ENV: name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "contrail.stack.scaleout.worker_hostname"}


def worker_hostname() -> str:
    """Airflow's ``hostname_callable`` in a worker: the worker's name, else the machine's."""
    return os.environ.get(WORKER_HOSTNAME_ENV) or socket.getfqdn()


def airflow_env(settings: Settings) -> dict[str, str]:
    """Airflow settings of every component (and task) on the scale-out profile."""
    so = _require(settings)
    return {
        "CONTRAIL_PROFILE": "scaleout",
        "CONTRAIL_MLFLOW_BACKEND_URI": so.mlflow_backend_uri,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": so.airflow_db_url,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": so.celery_broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": so.celery_result_backend,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(so.worker_concurrency),
        # a worker takes a task only when it has a free slot, so a busy worker never sits on
        # a task the other could run now
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        # a message a dead worker had taken is redelivered after this long; longer than any one
        # task (a year's feature build), and the scheduler's heartbeat check below retries
        # the task long before anyway
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
    }


def database_urls(settings: Settings) -> list[str]:
    so = _require(settings)
    return [so.airflow_db_url, so.mlflow_backend_uri]


def ensure_databases(settings: Settings) -> list[str]:
    """Create the profile's PostgreSQL databases that are missing; returns those created."""
    created = []
    for url in database_urls(settings):
        name, admin = _split(url)
        with _admin_connection(admin) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
    return created


def drop_databases(settings: Settings) -> None:
    """Drop the profile's databases (``make clean-state``, the end of a test run)."""
    for url in database_urls(settings):
        name, admin = _split(url)
        with _admin_connection(admin) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_broker(settings: Settings) -> bool:
    """Empty the profile's Redis database (its Celery queues and unacked messages), and only
    that one: other stacks on the same Redis keep theirs. Returns False when the broker is not
    Redis (nothing of ours to flush)."""
    import redis

    url = _require(settings).celery_broker_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return False
    client = redis.Redis.from_url(url, socket_connect_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()
    return True


def _split(url: str) -> tuple[str, str]:
    """A database URL -> (its database name, libpq URL of the server's ``postgres`` database)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql") or not parsed.database:
        raise ValueError(f"expected a postgresql URL with a database name, got {parsed!r}")
    admin = parsed.set(drivername="postgresql", database="postgres")
    return parsed.database, admin.render_as_string(hide_password=False)


class _admin_connection:
    """An autocommit connection (CREATE/DROP DATABASE cannot run in a transaction)."""

    def __init__(self, url: str) -> None:
        self._url = url

    def __enter__(self):
        import psycopg2

        self._conn = psycopg2.connect(self._url, connect_timeout=10)
        self._conn.autocommit = True
        return self._conn

    def __exit__(self, *_exc) -> None:
        self._conn.close()


def _require(settings: Settings) -> ScaleOut:
    if settings.scaleout is None:
        raise ValueError("the scale-out stack needs CONTRAIL_PROFILE=scaleout")
    return settings.scaleout
