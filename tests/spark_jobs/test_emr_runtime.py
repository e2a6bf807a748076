"""The feature job on the EMR runtime: Python 3.9 + PySpark 3.5, as EMR 7.x runs it.

Everything else in the suite runs the job on Python 3.11 + PySpark 4.3. Here the job's own
locked runtime (``spark_jobs/requirements-emr.lock``, installed into ``.venv-emr`` by
``make venv-emr``) runs the transform tests and one real ``spark-submit`` of the artifact EMR
gets, and the committed release label is checked to be the Spark that was tested. A machine
without Python 3.9 fails here, naming what to install: it never skips.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import date, timedelta
from pathlib import Path

import boto3
import pandas as pd
import pytest

from contrail import catalog, features, lake
from contrail.settings import REPO_ROOT
from contrail_spark import build_features, package

EMR_PYTHON = REPO_ROOT / ".venv-emr" / "bin" / "python"
EMR_LOCK = REPO_ROOT / "spark_jobs" / "requirements-emr.lock"
EMR_PYTHON_VERSION = (3, 9)

# The Spark of each EMR 7.x release label, from the Amazon EMR Release Guide, "Spark release
# history" (docs.aws.amazon.com/emr/latest/ReleaseGuide/Spark-release-history.html). Every EMR
# 7.x release runs PySpark on Python 3.9 (7.1+ also ship 3.11): "Application versions in
# Amazon EMR 7.x releases" in the same guide. Add a row when moving the release label.
EMR_RELEASE_SPARK = {
    "emr-7.8.0": "3.5.4-amzn-0",
    "emr-7.9.0": "3.5.5-amzn-0",
    "emr-7.10.0": "3.5.5-amzn-1",
    "emr-7.12.0": "3.5.6-amzn-1",
    "emr-7.13.0": "3.5.6-amzn-2",
}

BUCKET = "contrail-test-emr-runtime"
TARGET = date(2013, 3, 4)
LOOKBACK = 7  # enough history for every trailing 7-day feature, few objects to land


def locked_version(package_name: str, lock: Path = EMR_LOCK) -> str:
    """The ``name==version`` pin of ``package_name`` in a uv-compiled lock."""
    match = re.search(rf"^{re.escape(package_name)}==(\S+)$", lock.read_text(), re.MULTILINE)
    assert match, f"{package_name} is not pinned in {lock.name}"
    return match.group(1)


def upstream(version: str) -> str:
    """``3.5.5-amzn-0`` -> ``3.5.5``: the Apache release an EMR build is based on."""
    return version.split("-", 1)[0]


# ------------------------------------------------------------------ pure: release label, runtime pick

def test_release_label_runs_the_spark_the_lock_tests():
    label = json.loads(features.EMR_JOB_FLOW_CONFIG.read_text())["ReleaseLabel"]
    assert label in EMR_RELEASE_SPARK, (
        f"{label} has no row in EMR_RELEASE_SPARK: look its Spark up in the EMR Release Guide")
    assert upstream(EMR_RELEASE_SPARK[label]) == locked_version("pyspark"), (
        f"{label} runs Spark {EMR_RELEASE_SPARK[label]} but {EMR_LOCK.name} tests pyspark "
        f"{locked_version('pyspark')}: move one of them")


def test_run_local_on_another_runtime_uses_its_spark_and_interpreter(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, env, **kwargs):
        seen.update(cmd=cmd, env=env)
        return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

    runtime = tmp_path / "venv" / "bin"
    runtime.mkdir(parents=True)
    (runtime / "spark-submit").touch()
    monkeypatch.setattr(features.subprocess, "run", fake_run)
    # inherited from a session of this suite's own Spark: must not leak into the other runtime
    monkeypatch.setenv("PYSPARK_PYTHON", "/elsewhere/python3.11")
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", "/elsewhere/python3.11")
    features.run_local("s3://lake/p.json", artifact=tmp_path / "a.zip", env={}, python=runtime / "python")
    assert seen["cmd"][0] == str(runtime / "spark-submit")
    assert seen["env"]["PYSPARK_PYTHON"] == str(runtime / "python")
    assert "PYSPARK_DRIVER_PYTHON" not in seen["env"]


# ------------------------------------------------------------------ the runtime itself

def emr_env(artifact: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment for a ``.venv-emr`` child: nothing of this venv's Python path leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_DRIVER_PYTHON")}
    env["PYSPARK_PYTHON"] = str(EMR_PYTHON)
    if artifact is not None:
        env["PYTHONPATH"] = str(artifact)  # the job's code from the zip, as --py-files gives it
    return {**env, **extra}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return package.build_artifact(tmp_path_factory.mktemp("artifact"))


@pytest.fixture(scope="module")
def emr_runtime(artifact) -> dict:
    """The ``.venv-emr`` interpreter, checked to be the runtime the lock describes."""
    if not EMR_PYTHON.exists():
        pytest.fail(f"{EMR_PYTHON.relative_to(REPO_ROOT)} is missing: run `make venv-emr`. It needs "
                    "Python 3.9 (EMR 7.x runs the Spark job on it): install it, e.g. `pyenv install 3.9` "
                    "or the python3.9 package of your distribution.")
    probe = ("import json, sys, pyspark, contrail_spark; print(json.dumps({'python': sys.version_info[:2], "
             "'pyspark': pyspark.__version__, 'job': contrail_spark.__file__}))")
    found = json.loads(subprocess.run([str(EMR_PYTHON), "-c", probe], env=emr_env(artifact), check=True,
                                      capture_output=True, text=True).stdout)
    assert tuple(found["python"]) == EMR_PYTHON_VERSION
    assert found["pyspark"] == locked_version("pyspark"), "stale .venv-emr: run `make venv-emr`"
    assert found["job"].startswith(str(artifact)), found["job"]  # the zip, not the source tree
    return found


@pytest.mark.spark
def test_transforms_pass_on_the_emr_runtime(emr_runtime, artifact):
    """tests/spark_jobs/test_transforms.py, unchanged, on Python 3.9 + PySpark 3.5 (~40-70 s)."""
    result = subprocess.run(
        [str(EMR_PYTHON), "-m", "pytest", "tests/spark_jobs/test_transforms.py", "-p", "no:cacheprovider",
         "-q", "-W", "ignore::UserWarning:pyspark.pandas"],
        cwd=REPO_ROOT, env=emr_env(artifact), capture_output=True, text=True, check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.fullmatch(r"\d+ passed(, \d+ warnings?)? in .*", summary), summary  # no skip, xfail or error


@pytest.fixture(scope="module")
def small_lake(emulator_env, land_day) -> tuple:
    """One target day of flights and weather, with a week of flights before it, landed."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    flights_days = [TARGET - timedelta(days=k) for k in range(LOOKBACK, -1, -1)]
    validated = {
        "flights": {d: land_day(s3, BUCKET, "flights", d) for d in flights_days},
        "weather": {TARGET: land_day(s3, BUCKET, "weather", TARGET)},
    }
    return s3, validated


def plan_uri(s3, validated, feature_set: str, job_version: str) -> str:
    plan = features.plan_features(validated, [TARGET], LOOKBACK, feature_set=feature_set,
                                  job_version=job_version, bucket=BUCKET, build="emr-runtime")
    key = catalog.feature_plan_key(feature_set, "emr-runtime")
    lake.put_json(s3, BUCKET, key, plan)
    return lake.s3_uri(BUCKET, key)


def staged(s3, feature_set: str) -> tuple[dict, pd.DataFrame]:
    """The build the job staged for the target (what the features gate audits next)."""
    partition = catalog.features_partition(feature_set, TARGET)
    manifest = lake.read_json(s3, BUCKET, catalog.staged_manifest_key(partition, "emr-runtime"))
    return manifest, catalog.read_parts(s3, BUCKET, manifest["parts"])


@pytest.mark.spark
def test_spark_submit_on_the_emr_runtime_publishes_what_spark_4_does(
    emr_runtime, artifact, small_lake, emulator_env, spark
):
    """One real spark-submit of the EMR artifact on PySpark 3.5 (~20-40 s); the same plan on
    this suite's PySpark 4.3 must give the same rows and the same schema."""
    s3, validated = small_lake
    version = package.artifact_version(artifact)

    submitted = features.run_local(plan_uri(s3, validated, "flights_v1_spark35", version),
                                   artifact=artifact, env=emulator_env, python=EMR_PYTHON)
    assert f"Running Spark version {locked_version('pyspark')}" in submitted.stderr
    build_features.main(["--plan", plan_uri(s3, validated, "flights_v1_spark4", version), "--io", "local"],
                        spark=spark)

    manifest35, rows35 = staged(s3, "flights_v1_spark35")
    manifest4, rows4 = staged(s3, "flights_v1_spark4")
    assert manifest35["job_version"] == version
    assert manifest35["rows"] == len(rows35) > 0
    assert manifest35["inputs"] == manifest4["inputs"]
    assert manifest35["schema"] == manifest4["schema"]
    assert rows35["carrier_flights_7d"].gt(0).all()  # the week of history reached the job
    pd.testing.assert_frame_equal(rows35, rows4)
