"""The Airflow side of the one switch: the lake client, the AWS environment and the MLflow
tracking URI, all from Airflow connections (``aws_default``, ``mlflow_default``); and the few
values a task reads once from its context. Nothing here decides anything.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from contrail.settings import Settings, load_settings


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()


def s3() -> Any:
    """boto3 S3 client from the ``aws_default`` connection (endpoint in its extra, locally)."""
    from contrail.aws_hooks import LakeS3Hook

    return LakeS3Hook(aws_conn_id=settings().aws_conn_id).get_conn()


def aws_client(service: str) -> Any:
    """boto3 client of another AWS service (DynamoDB, Kinesis) from the same connection."""
    from contrail.aws_hooks import LakeAwsHook

    return LakeAwsHook(aws_conn_id=settings().aws_conn_id, client_type=service).get_conn()


def aws_env() -> dict[str, str]:
    """Environment for subprocesses (spark-submit) that talk to AWS, from the connection."""
    from contrail.aws_hooks import LakeAwsHook

    hook = LakeAwsHook(aws_conn_id=settings().aws_conn_id, client_type="s3")
    creds = hook.get_credentials()
    env = dict(os.environ)
    env["AWS_ACCESS_KEY_ID"] = creds.access_key
    env["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
    if creds.token:
        env["AWS_SESSION_TOKEN"] = creds.token
    endpoint = hook.conn_config.endpoint_url
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    env["AWS_DEFAULT_REGION"] = hook.conn_region_name or settings().region
    return env


def mlflow_tracking_uri() -> str:
    """Tracking URI from the ``mlflow_default`` connection (http host/port, or a full URI in host)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(settings().mlflow_conn_id)
    host = conn.host or ""
    if "://" in host:
        return host.rstrip("/")
    scheme = conn.schema or "http"
    return f"{scheme}://{host}:{conn.port}" if conn.port else f"{scheme}://{host}"


def mlflow_client() -> Any:
    import mlflow

    mlflow.set_tracking_uri(mlflow_tracking_uri())
    return mlflow.MlflowClient()


def run_ids(context: dict) -> tuple[str, str]:
    return context["dag"].dag_id, context["run_id"]


def start_time(context: dict) -> str:
    """When this try started (never ``now()``: a retry records its own start)."""
    ti = context["ti"]
    start = getattr(ti, "start_date", None) or context["dag_run"].start_date
    return start.isoformat()


def triggering_extras(context: dict) -> list[dict]:
    """The extras of the asset events that triggered this run (empty for a manual run)."""
    events = context.get("triggering_asset_events") or {}
    return [dict(ev.extra or {}) for evs in events.values() for ev in evs]
