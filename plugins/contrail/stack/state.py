"""Where the local stack keeps its state and its generated secrets.

Shared by the stack's process control (``local``) and the REST client (``api``), which needs
the Airflow login; neither imports the other for it.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from contrail.settings import Settings

AIRFLOW_USER = "contrail"


def paths(settings: Settings) -> dict[str, Path]:
    root = settings.state_dir
    return {
        "root": root,
        "airflow_home": root / "airflow",
        "mlflow": root / "mlflow",
        "spark_connect": root / "spark-connect",
        "emulator_state": root / "emulator" / "state.pkl",
        "logs": root / "logs",
        "run": root / "run",
        "secrets": root / "secrets.json",
        "passwords": root / "airflow" / "passwords.json",
        # restarts and states the supervisor records for `contrail stack status`
        "supervision": root / "run" / "supervision.json",
    }


def ensure_secrets(settings: Settings) -> dict[str, str]:
    """Create the stack's secrets once; later starts reuse them (tokens and logins survive)."""
    p = paths(settings)
    if p["secrets"].exists():
        return json.loads(p["secrets"].read_text())
    from cryptography.fernet import Fernet

    values = {
        "airflow_password": secrets.token_urlsafe(12),
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
        "fernet_key": Fernet.generate_key().decode(),
    }
    p["secrets"].parent.mkdir(parents=True, exist_ok=True)
    p["secrets"].touch(mode=0o600)
    p["secrets"].write_text(json.dumps(values, indent=2))
    return values


def airflow_password(settings: Settings) -> str:
    return ensure_secrets(settings)["airflow_password"]
