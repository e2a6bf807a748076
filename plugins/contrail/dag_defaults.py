"""Defaults every contrail DAG shares: ownership, retries, priorities, tags."""

from __future__ import annotations

from datetime import timedelta

# Executor slots go to the highest priority weight first; among equals, to the oldest logical
# date. A catch-up queues hundreds of landing tasks dated 2013, which would sort before every
# asset-triggered run (dated now) and starve validation, features and scoring until the whole
# range had landed. So every stage outranks landing, and the stream's micro-batches (the live
# path) outrank every stage.
LANDING_PRIORITY = 1
STAGE_PRIORITY = 10
STREAM_PRIORITY = 100

DEFAULT_ARGS = {
    "owner": "contrail",
    # Transient failures (S3 throttling, a busy SQLite) retry; data errors raise
    # AirflowFailException instead, because retrying cannot fix a bad file.
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "priority_weight": STAGE_PRIORITY,
    "weight_rule": "absolute",
}

TAGS = ["contrail"]


def rerun_params(**extra):
    """The Params every stage DAG takes for a re-run over a range (see :mod:`contrail.reruns`):
    the trigger form shows date pickers, a ``rebuild`` choice and a reason. ``extra`` adds a
    stage's own (e.g. scoring's ``model_version``)."""
    from airflow.sdk import Param

    from contrail.reruns import PENDING, REBUILD_MODES

    return {
        "from_date": Param(None, type=["null", "string"], format="date", title="From (dt)",
                           description="first day to re-run (empty: no lower bound)"),
        "to_date": Param(None, type=["null", "string"], format="date", title="To (dt)",
                         description="last day to re-run, inclusive (empty: no upper bound)"),
        "rebuild": Param(PENDING, enum=list(REBUILD_MODES), title="Rebuild",
                         description="pending: only new or changed input; changed: also what the current "
                                     "code would make differently; all: every day in the range"),
        "reason": Param(None, type=["null", "string"], title="Reason",
                        description="why this re-run (recorded with what it writes)"),
        **extra,
    }
