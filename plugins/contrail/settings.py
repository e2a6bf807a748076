"""The one switch: ``CONTRAIL_ENV`` picks the environment and everything follows from it here.

``local`` (the default) is the embedded stack: an AWS API emulator (moto server), an MLflow
server on SQLite, a Spark Connect server (the micro-batch path's warm Spark) and Airflow on
SQLite, all on loopback, with state under ``.contrail/``.
``aws`` is real S3 / EMR / MLflow; endpoints and credentials then come only from Airflow
connections (``aws_default``, ``mlflow_default``) or the standard AWS environment, and the
resources are those of the CloudFormation stack ``CONTRAIL_STACK_NAME`` (``deploy/contrail.yaml``),
whose outputs ``contrail bootstrap`` reads.

Services on other hosts (containers, ``docker-compose.yml``) are named by URL:
``CONTRAIL_EMULATOR_URL``, ``CONTRAIL_MLFLOW_URL``, ``CONTRAIL_AIRFLOW_URL`` (and
``CONTRAIL_SPARK_REMOTE``); without them every service is on loopback at its port.

``CONTRAIL_PROFILE`` picks how the local stack runs Airflow: ``embedded`` (the default: SQLite,
LocalExecutor, MLflow on SQLite) or ``scaleout`` (the engines a production deployment runs:
Airflow's metadata DB and MLflow's backend store on PostgreSQL, the CeleryExecutor with Redis
as broker and PostgreSQL as result backend, two Celery workers, the feature job's Spark task on
its own ``spark`` queue). Connection URLs come from the environment under the names Airflow
itself reads; only the loopback defaults are written here.

``CONTRAIL_STREAM_SOURCE`` picks the micro-batch path's source: ``firehose`` (the default: S3
objects notified on SQS) or ``kinesis`` (the Kinesis Data Stream, read by shard); Firehose lands
the raw events in ``stream/`` either way. ``CONTRAIL_ONLINE_TTL_DAYS`` (45) is how long the online
store keeps an as-of day. ``CONTRAIL_TASK_PRELOAD`` (``1``) starts the processes that fork task
processes (the embedded scheduler, the Celery workers) with the task code imported
(``contrail.stack.preload``); ``0`` starts the plain ``airflow`` command.

Nothing here touches the network: DAG files may call :func:`load_settings` at parse time.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

Environment = Literal["local", "aws"]
SparkRunner = Literal["local", "emr", "emr_serverless"]
Profile = Literal["embedded", "scaleout"]
StreamSource = Literal["firehose", "kinesis"]

REPO_ROOT = Path(__file__).resolve().parents[2]

DATASETS: tuple[str, ...] = ("flights", "weather")


@dataclass(frozen=True)
class Ports:
    airflow: int = 8080
    mlflow: int = 5000
    emulator: int = 4566
    spark_connect: int = 15002


@dataclass(frozen=True)
class ScaleOut:
    """Where the scale-out profile's services are and how its workers are cut.

    The database URLs are SQLAlchemy URLs; the result backend is Celery's ``db+…`` form.
    """

    airflow_db_url: str
    mlflow_backend_uri: str
    celery_broker_url: str
    celery_result_backend: str
    # the queue the feature job's Spark task is routed to; only the first worker serves it
    spark_queue: str = "spark"
    # two cores per worker "host": two task slots each
    worker_concurrency: int = 2


@dataclass(frozen=True)
class Settings:
    """Everything that differs between environments, resolved once."""

    env: Environment
    bucket: str
    region: str
    spark_runner: SparkRunner
    model_name: str
    feature_set: str
    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    host: str = "127.0.0.1"
    # Spark Connect endpoint of the micro-batch path (None: a local JVM in the task)
    spark_remote: str | None = None
    # an event-path stream run keeps scoring new objects until none came for this long (0: off)
    stream_drain_idle_s: float = 20.0
    # where the micro-batch path takes flight events from: Firehose's S3 objects (notified on
    # SQS) or the Kinesis Data Stream, read by shard (Firehose keeps landing raw events either way)
    stream_source: StreamSource = "firehose"
    # the online store keeps an as-of day this long after it (its TTL attribute)
    online_ttl_days: int = 45
    aws_conn_id: str = "aws_default"
    # a running task whose process stops heartbeating (a killed worker, a killed scheduler's
    # executor) is failed, then retried, after this long
    task_heartbeat_timeout_s: int = 300
    # the processes task processes are forked from import the task code first (stack/preload.py)
    task_preload: bool = True
    mlflow_conn_id: str = "mlflow_default"
    # the CloudFormation stack holding the AWS resources (aws mode)
    stack_name: str = "contrail"
    # service URLs when they are not on loopback (a container's service name, say)
    emulator_endpoint: str | None = None
    mlflow_endpoint: str | None = None
    airflow_endpoint: str | None = None
    profile: Profile = "embedded"
    # set only on the scaleout profile
    scaleout: ScaleOut | None = None

    @property
    def spark_queue(self) -> str:
        """The Celery queue of the feature job's Spark task (executors without queues ignore it)."""
        return self.scaleout.spark_queue if self.scaleout else "default"

    @property
    def is_local(self) -> bool:
        return self.env == "local"

    @property
    def emulator_url(self) -> str | None:
        """Endpoint of the AWS API emulator, or None on real AWS."""
        if not self.is_local:
            return None
        return self.emulator_endpoint or f"http://{self.host}:{self.ports.emulator}"

    @property
    def mlflow_url(self) -> str:
        return self.mlflow_endpoint or f"http://{self.host}:{self.ports.mlflow}"

    @property
    def airflow_url(self) -> str:
        return self.airflow_endpoint or f"http://{self.host}:{self.ports.airflow}"

    @property
    def stream_queue(self) -> str:
        return f"{self.bucket}-stream-events"

    @property
    def firehose_stream(self) -> str:
        return f"{self.bucket}-flight-events"

    @property
    def kinesis_stream(self) -> str:
        """The Kinesis Data Stream the simulator also puts flight events to."""
        return f"{self.bucket}-flight-events-live"

    @property
    def online_table(self) -> str:
        """The DynamoDB table of the online feature store (hot tier)."""
        return f"{self.bucket}-online-features"


def _int(environ: Mapping[str, str], name: str, default: int, what: str = "an integer port") -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be {what}, got {raw!r}") from exc


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {raw!r}")
    return value


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    if raw not in ("0", "1"):
        raise ValueError(f"{name} must be 0 or 1, got {raw!r}")
    return raw == "1"


def _url(environ: Mapping[str, str], name: str) -> str | None:
    raw = (environ.get(name) or "").rstrip("/")
    if raw and not raw.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an http(s):// URL, got {raw!r}")
    return raw or None
# psycopg2 named: SQLAlchemy 2.1 would take a bare postgresql:// for psycopg 3
POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379"


def state_tag(state_dir: Path) -> str:
    """A short stable tag of a state directory: each one gets its own databases."""
    return hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]


def _scaleout(environ: Mapping[str, str], state_dir: Path) -> ScaleOut:
    """The scale-out services: the environment's URLs, else loopback PostgreSQL and Redis with
    databases named after the state dir, so two stacks (a developer's, a test run's) never
    share a metadata DB, a registry or a Celery queue."""
    postgres = environ.get("CONTRAIL_POSTGRES_URL", POSTGRES_URL).rstrip("/")
    tag = state_tag(state_dir)
    airflow_db = environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or f"{postgres}/contrail_{tag}_airflow"
    redis_db = _int(environ, "CONTRAIL_REDIS_DB", 0, "a Redis database number")
    redis = environ.get("CONTRAIL_REDIS_URL", REDIS_URL).rstrip("/")
    return ScaleOut(
        airflow_db_url=airflow_db,
        mlflow_backend_uri=environ.get("CONTRAIL_MLFLOW_BACKEND_URI") or f"{postgres}/contrail_{tag}_mlflow",
        celery_broker_url=environ.get("AIRFLOW__CELERY__BROKER_URL") or f"{redis}/{redis_db}",
        celery_result_backend=environ.get("AIRFLOW__CELERY__RESULT_BACKEND") or f"db+{airflow_db}",
        spark_queue=environ.get("CONTRAIL_SPARK_QUEUE", "spark"),
        worker_concurrency=_int(environ, "CONTRAIL_WORKER_CONCURRENCY", 2, "a number of task slots"),
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings from environment variables (defaults give the local stack)."""
    environ = os.environ if environ is None else environ
    env = environ.get("CONTRAIL_ENV", "local")
    if env not in ("local", "aws"):
        raise ValueError(f"CONTRAIL_ENV must be 'local' or 'aws', got {env!r}")
    default_runner = "local" if env == "local" else "emr"
    runner = environ.get("CONTRAIL_SPARK_RUNNER", default_runner)
    if runner not in ("local", "emr", "emr_serverless"):
        raise ValueError(f"CONTRAIL_SPARK_RUNNER must be local, emr or emr_serverless, got {runner!r}")
    ports = Ports(
        airflow=_int(environ, "CONTRAIL_AIRFLOW_PORT", 8080),
        mlflow=_int(environ, "CONTRAIL_MLFLOW_PORT", 5000),
        emulator=_int(environ, "CONTRAIL_EMULATOR_PORT", 4566),
        spark_connect=_int(environ, "CONTRAIL_SPARK_CONNECT_PORT", 15002),
    )
    # local: the stack's own Spark Connect server; aws: whatever endpoint is configured
    # (an EMR cluster's Spark Connect, say), else the task starts its own local JVM
    profile = environ.get("CONTRAIL_PROFILE", "embedded")
    if profile not in ("embedded", "scaleout"):
        raise ValueError(f"CONTRAIL_PROFILE must be 'embedded' or 'scaleout', got {profile!r}")
    # each profile its own default state: switching profiles never mixes their databases
    default_state = REPO_ROOT / (".contrail" if profile == "embedded" else ".contrail-scaleout")
    state_dir = Path(environ.get("CONTRAIL_STATE_DIR", str(default_state))).resolve()
    source = environ.get("CONTRAIL_STREAM_SOURCE", "firehose")
    if source not in ("firehose", "kinesis"):
        raise ValueError(f"CONTRAIL_STREAM_SOURCE must be 'firehose' or 'kinesis', got {source!r}")
    remote = environ.get("CONTRAIL_SPARK_REMOTE") or (
        f"sc://127.0.0.1:{ports.spark_connect}" if env == "local" else None)
    return Settings(
        env=env,  # type: ignore[arg-type]
        bucket=environ.get("CONTRAIL_BUCKET", "contrail-lake"),
        region=environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        spark_runner=runner,  # type: ignore[arg-type]
        model_name=environ.get("CONTRAIL_MODEL_NAME", "flight_delay"),
        feature_set=environ.get("CONTRAIL_FEATURE_SET", "flights_v1"),
        state_dir=state_dir,
        ports=ports,
        spark_remote=remote,
        stream_drain_idle_s=_float(environ, "CONTRAIL_STREAM_DRAIN_IDLE_S", 20.0),
        task_heartbeat_timeout_s=_int(environ, "CONTRAIL_TASK_HEARTBEAT_TIMEOUT_S", 300, "a number of seconds"),
        task_preload=_flag(environ, "CONTRAIL_TASK_PRELOAD", True),
        stream_source=source,  # type: ignore[arg-type]
        online_ttl_days=_int(environ, "CONTRAIL_ONLINE_TTL_DAYS", 45, "a number of days"),
        stack_name=environ.get("CONTRAIL_STACK_NAME") or "contrail",
        emulator_endpoint=_url(environ, "CONTRAIL_EMULATOR_URL"),
        mlflow_endpoint=_url(environ, "CONTRAIL_MLFLOW_URL"),
        airflow_endpoint=_url(environ, "CONTRAIL_AIRFLOW_URL"),
        profile=profile,  # type: ignore[arg-type]
        scaleout=_scaleout(environ, state_dir) if profile == "scaleout" else None,
    )
