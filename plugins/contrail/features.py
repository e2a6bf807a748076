"""The feature stage, orchestration side: what to build, and how to launch the Spark job.

Pure logic (:func:`plan_features`, :func:`spark_submit_command`, :func:`emr_steps`,
:func:`load_job_flow_config`) plus two runners on this machine: :func:`run_on_connect` (the
stack's Spark Connect server) and :func:`run_local` (a spark-submit of the artifact). The Spark job itself lives
in ``spark_jobs/contrail_spark`` and only ever sees the plan JSON this module builds::

    {"feature_set", "job_version", "bucket", "targets": [dt, …],
     "lookback_days": {dataset: days},
     "inputs": {dataset: {dt: {"version", "manifest", "objects": [s3 URIs]}}}}

One plan covers every pending day, so a year of backfill is one job, not 365 clusters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any, Iterable, Mapping

from contrail import catalog
from contrail.settings import DATASETS

# package data: contrail_spark/main.py links spark_jobs/main.py
ENTRY_POINT = Path(str(files("contrail_spark").joinpath("main.py")))
CONFIG_DIR = Path(__file__).resolve().parent / "config"
EMR_JOB_FLOW_CONFIG = CONFIG_DIR / "emr_job_flow.json"
EMR_SERVERLESS_JOB_CONFIG = CONFIG_DIR / "emr_serverless_job.json"
LOOKBACK_DAYS = 28
# Weather is joined at the flight's own hour: only flights need the trailing lookback.
LOOKBACK_DATASETS: tuple[str, ...] = ("flights",)
STDERR_TAIL_LINES = 40


def lookback_span(dataset: str, lookback_days: int = LOOKBACK_DAYS) -> int:
    """How many days before a target a build reads of ``dataset``: ``lookback_days`` for a
    dataset read with a trailing window, 0 (the target's own day only) for the others."""
    return lookback_days if dataset in LOOKBACK_DATASETS else 0


class SparkJobError(RuntimeError):
    """The Spark job failed; the message carries the tail of its stderr."""


def _input_entry(info: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "version": int(info["version"]),
        "manifest": str(info["manifest"]),
        "objects": sorted(str(o) for o in info["objects"]),
    }


def plan_features(
    validated: Mapping[str, Mapping[date, Mapping[str, Any]]],
    pending: Iterable[date],
    lookback_days: int = LOOKBACK_DAYS,
    *,
    feature_set: str,
    job_version: str,
    bucket: str,
    datasets: Iterable[str] = DATASETS,
    build: str | None = None,
) -> dict[str, Any]:
    """The plan JSON of one feature-job run.

    ``validated[dataset][day]`` describes a validated partition (``version``, ``manifest``,
    ``objects``). Targets are the pending days for which every dataset is validated (the
    others stay pending for a later run). Inputs are each target's own day for every dataset,
    plus for flights the ``lookback_days`` before it, where validated. Empty ``targets``
    means there is nothing to run. With ``build``, the plan also names where each target's
    build is staged (``outputs``, from the catalog), which the job needs.
    """
    datasets = tuple(datasets)
    targets = sorted({d for d in pending if all(d in validated.get(ds, {}) for ds in datasets)})
    inputs: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset in datasets:
        span = lookback_span(dataset, lookback_days)
        needed = {t - timedelta(days=k) for t in targets for k in range(span + 1)}
        available = validated.get(dataset, {})
        inputs[dataset] = {
            d.isoformat(): _input_entry(available[d]) for d in sorted(needed) if d in available
        }
    planned = {
        "feature_set": feature_set,
        "job_version": job_version,
        "bucket": bucket,
        "targets": [t.isoformat() for t in targets],
        "lookback_days": {ds: lookback_span(ds, lookback_days) for ds in datasets},
        "inputs": inputs,
    }
    if build is not None:
        planned["outputs"] = catalog.feature_outputs(feature_set, planned["targets"], build)
    return planned


def _spark_submit_executable(python: Path | str) -> str:
    # the venv's spark-submit, next to its interpreter, before anything on PATH
    beside = Path(python).parent / "spark-submit"
    return str(beside) if beside.exists() else (shutil.which("spark-submit") or "spark-submit")


def spark_submit_command(
    artifact: Path | str,
    entry: Path | str,
    plan_uri: str,
    *,
    master: str = "local[2]",
    io: str = "local",
    python: Path | str = sys.executable,
) -> list[str]:
    """The local spark-submit command line of the feature job, with the Spark of ``python``'s venv."""
    return [
        _spark_submit_executable(python),
        "--master", master,
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.shuffle.partitions=4",
        "--conf", "spark.sql.session.timeZone=UTC",
        "--py-files", str(artifact),
        str(entry),
        "--plan", plan_uri,
        "--io", io,
    ]


def run_local(
    plan_uri: str,
    *,
    artifact: Path,
    env: Mapping[str, str],
    entry: Path = ENTRY_POINT,
    master: str = "local[2]",
    python: Path | str | None = None,
) -> subprocess.CompletedProcess:
    """Run the feature job through spark-submit on this machine (local mode).

    ``env`` is laid over the current environment; it carries ``AWS_ENDPOINT_URL`` (the
    emulator) and AWS credentials from the caller's connection. The job's code comes from
    the artifact (``--py-files`` goes first on the Python path), the same zip EMR runs.
    ``python`` picks another runtime: that interpreter and its venv's Spark run the job
    (the EMR runtime test runs it on Python 3.9 + PySpark 3.5 this way); by default, this
    interpreter, unless the environment names a ``PYSPARK_PYTHON``.
    """
    full_env = {**os.environ, **env}
    if python is None:
        full_env.setdefault("PYSPARK_PYTHON", sys.executable)
    else:  # driver and workers both on the named runtime, whatever this process inherited
        full_env["PYSPARK_PYTHON"] = str(python)
        full_env.pop("PYSPARK_DRIVER_PYTHON", None)
    full_env.pop("PYTHONPATH", None)
    result = subprocess.run(
        spark_submit_command(artifact, entry, plan_uri, master=master,
                             python=sys.executable if python is None else python),
        env=full_env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-STDERR_TAIL_LINES:])
        raise SparkJobError(f"feature job failed (exit {result.returncode}) for {plan_uri}:\n{tail}")
    return result


def run_on_connect(plan_uri: str, *, remote: str, s3: Any) -> dict[str, int]:
    """Run the feature job on a Spark Connect server that shares this machine's disk (the
    local stack's): rows staged per target day.

    The job's DataFrame plans go to a JVM that is already up and warm. A spark-submit per run
    paid its JVM start and cold first queries: 22 s for one day's build, 3-4 s on the warm
    server. The job stages its inputs and outputs through local disk as in local mode (the
    server reads and writes the same files) with ``s3``, the caller's client. It runs in a
    session of its own, stopped at the end; the server stays up.
    """
    from pyspark.sql import SparkSession

    from contrail.stream.lookups import check_reachable
    from contrail_spark import build_features, lake_io

    check_reachable(remote)  # a server being restarted fails the try at once; Airflow retries
    spark = SparkSession.builder.remote(remote).create()
    try:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        return build_features.main(["--plan", plan_uri, "--io", "local"], spark=spark,
                                   io=lake_io.make_io("local", s3=s3))
    finally:
        spark.stop()


def emr_steps(artifact_uri: str, entry_uri: str, plan_uri: str) -> list[dict[str, Any]]:
    """EMR ``add_job_flow_steps`` payload: one spark-submit step in cluster mode."""
    return [{
        "Name": "contrail-build-features",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "spark-submit", "--deploy-mode", "cluster",
                "--conf", "spark.sql.session.timeZone=UTC",
                "--py-files", artifact_uri,
                entry_uri,
                "--plan", plan_uri,
                "--io", "s3",
            ],
        },
    }]


def _substitute(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        for name, value in values.items():
            node = node.replace("{" + name + "}", value)
        return node
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _substitute(item, values) for key, item in node.items()}
    return node


def load_job_flow_config(path: Path | str = EMR_JOB_FLOW_CONFIG, **values: str) -> dict[str, Any]:
    """A committed EMR JSON config with its ``{name}`` placeholders filled from ``values``.

    ``load_job_flow_config(bucket="contrail-lake")`` gives the ``run_job_flow`` arguments;
    the serverless config also takes ``artifact_uri``, ``entry_uri``, ``plan_uri``. A
    placeholder left unfilled raises, so a typo cannot reach AWS.
    """
    config = _substitute(json.loads(Path(path).read_text()), values)
    leftover = sorted({part.split("}", 1)[0] for part in json.dumps(config).split("{")[1:]
                       if "}" in part and part.split("}", 1)[0].isidentifier()})
    if leftover:
        raise ValueError(f"{path}: placeholders not filled: {leftover}")
    return config
