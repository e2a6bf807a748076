"""The stack's state and secrets module is what the REST client and the process control share:
the client no longer imports the process control (no import cycle)."""

from __future__ import annotations

import subprocess
import sys


def test_the_api_client_does_not_import_the_stack_process_control():
    code = ("import sys, contrail.stack.api as api; api.AirflowClient.for_local;"
            "print('contrail.stack.local' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_secrets_are_created_once_and_the_client_logs_in_with_them(tmp_path):
    from contrail.settings import load_settings
    from contrail.stack import state
    from contrail.stack.api import AirflowClient

    settings = load_settings({"CONTRAIL_STATE_DIR": str(tmp_path)})
    first = state.ensure_secrets(settings)
    assert state.ensure_secrets(settings) == first
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    client = AirflowClient.for_local(settings)
    assert (client.username, client.password) == (state.AIRFLOW_USER, first["airflow_password"])
