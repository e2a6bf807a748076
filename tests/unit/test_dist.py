"""``make dist``: the MWAA files, and that the plugin finds its data inside plugins.zip alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from contrail.settings import REPO_ROOT
from contrail.stack import dist

EXPECTED_DAGS = {"landing_flights", "landing_weather", "quality", "features", "training", "scoring",
                 "stream_scoring", "stream_sweep", "stream_kinesis", "compaction"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return dist.build(tmp_path_factory.mktemp("mwaa"))


def test_requirements_pin_the_runtime_to_the_lock() -> None:
    text = dist.requirements_txt(
        "apache-airflow==3.3.2\nfoo[bar,baz]==1.*  # why\nPy_Thing\npytest\nmoto[server]==5.2.*\n",
        "apache-airflow==3.3.2\n    # via x\nfoo==1.4.0\npy-thing==0.3\npytest==9.0\nmoto==5.2.5\n")
    assert text.splitlines() == [
        '--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-3.3.2/constraints-3.11.txt"',
        "foo[bar,baz]==1.4.0", "py-thing==0.3"]


def test_a_requirement_missing_from_the_lock_is_refused() -> None:
    with pytest.raises(ValueError, match="make lock"):
        dist.requirements_txt("apache-airflow\nnew-thing\n", "apache-airflow==3.3.2\n")


def test_built_requirements(built: dict[str, Path]) -> None:
    lines = built["requirements"].read_text().splitlines()
    lock = (REPO_ROOT / "requirements.lock").read_text()
    airflow = next(l.split("==")[1] for l in lock.splitlines() if l.startswith("apache-airflow=="))
    assert lines[0].startswith("--constraint") and f"constraints-{airflow}/" in lines[0]
    assert all("==" in line for line in lines[1:])
    names = {dist._requirement_name(line) for line in lines[1:]}
    assert "apache-airflow" not in names and not names & dist.NOT_RUNTIME
    assert {"apache-airflow-providers-amazon", "great-expectations", "mlflow"} <= names


def test_zips_are_reproducible(built: dict[str, Path], tmp_path: Path) -> None:
    again = dist.build(tmp_path)
    for kind in ("dags", "plugins"):
        assert again[kind].read_bytes() == built[kind].read_bytes(), kind


def test_plugins_zip_holds_packages_and_their_data(built: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(built["plugins"]).namelist())
    suites = {p.name for p in (REPO_ROOT / "expectations").glob("*.json")}
    assert {f"contrail/expectations/{s}" for s in suites} <= names
    assert {"contrail/__init__.py", "contrail/settings.py", "contrail/config/emr_job_flow.json",
            "contrail_spark/__init__.py", "contrail_spark/main.py", ".airflowignore"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert zipfile.ZipFile(built["plugins"]).read("contrail_spark/main.py") == \
        (REPO_ROOT / "spark_jobs" / "main.py").read_bytes()
    assert {Path(n).name for n in zipfile.ZipFile(built["dags"]).namelist()} == \
        {p.name for p in (REPO_ROOT / "dags").glob("*.py")}


def test_extracted_dist_finds_its_data_and_parses_its_dags(built: dict[str, Path], tmp_path: Path) -> None:
    """As on MWAA: plugins.zip extracted onto sys.path, the DAG zip in the DAGs folder, no repo."""
    plugins, dags = tmp_path / "plugins", tmp_path / "dags"
    zipfile.ZipFile(built["plugins"]).extractall(plugins)
    dags.mkdir()
    (dags / built["dags"].name).write_bytes(built["dags"].read_bytes())
    probe = f"""
import json, contrail, contrail_spark
from contrail.quality import SUITES_DIR, load_suite_document
from contrail.features import ENTRY_POINT
from airflow.dag_processing.dagbag import DagBag
bag = DagBag({str(dags)!r})
print(json.dumps({{"contrail": contrail.__file__, "suites": str(SUITES_DIR), "entry": str(ENTRY_POINT),
                  "suite_name": load_suite_document("flights_raw").get("name"),
                  "entry_exists": ENTRY_POINT.is_file(), "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
                  "dags": sorted(bag.dag_ids)}}))
"""
    env = {**os.environ, "PYTHONPATH": str(plugins), "CONTRAIL_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["contrail"].startswith(str(plugins)), seen
    assert seen["suites"].startswith(str(plugins)) and seen["entry"].startswith(str(plugins)), seen
    assert seen["entry_exists"] and seen["suite_name"]
    assert not seen["errors"], seen["errors"]
    assert EXPECTED_DAGS <= set(seen["dags"])
