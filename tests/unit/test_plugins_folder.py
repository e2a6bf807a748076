"""What Airflow imports from the plugins folder: only the UI plugin's module, here and in MWAA's
plugins.zip. Airflow imports every other .py file there as a top-level module, so without the
folder's ``.airflowignore`` each API server, DAG processor, triggerer and task process would
import all of contrail, scikit-learn, SciPy and matplotlib with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

from contrail.settings import REPO_ROOT
from contrail.stack import dist

PROBE = """
import json, sys
from airflow import plugins_manager
info = plugins_manager.get_plugin_info()
print(json.dumps({"plugins": sorted(p["name"] for p in info),
                  "errors": plugins_manager.get_import_errors(),
                  "modules": sorted(m for m in ("sklearn", "scipy", "matplotlib", "training", "contrail.training",
                                                "model_story", "pyspark", "contrail_spark.main")
                                    if m in sys.modules)}))
"""


def plugins_airflow_loads(folder: Path, tmp_path: Path) -> dict:
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(folder), "PYTHONPATH": str(folder),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "CONTRAIL_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_plugins_folder_gives_airflow_the_ui_plugin_alone(tmp_path: Path) -> None:
    seen = plugins_airflow_loads(REPO_ROOT / "plugins", tmp_path)
    assert "contrail_ui" in seen["plugins"] and not seen["errors"], seen
    assert seen["modules"] == [], seen


def test_mwaa_plugins_zip_keeps_the_same_ignore_file(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    zipfile.ZipFile(BytesIO(dist.plugins_zip())).extractall(folder)
    assert (folder / ".airflowignore").read_bytes() == (REPO_ROOT / "plugins" / ".airflowignore").read_bytes()
    seen = plugins_airflow_loads(folder, tmp_path)
    assert "contrail_ui" in seen["plugins"] and not seen["errors"], seen
    assert seen["modules"] == [], seen
