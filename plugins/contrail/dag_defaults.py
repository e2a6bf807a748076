"""Defaults every contrail DAG shares: ownership, retries, tags."""

from __future__ import annotations

from datetime import timedelta

DEFAULT_ARGS = {
    "owner": "contrail",
    # Transient failures (S3 throttling, a busy SQLite) retry; data errors raise
    # AirflowFailException instead, because retrying cannot fix a bad file.
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

TAGS = ["contrail"]
