"""Test-wide environment: a private AIRFLOW_HOME, the repo's dags folder, loopback-only Spark.

Set before anything imports Airflow, so no test touches ~/airflow or a developer's stack.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_HOME = tempfile.mkdtemp(prefix="contrail-test-airflow-")

os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("CONTRAIL_ENV", "local")
