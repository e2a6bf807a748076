"""The stack's MLflow server runs as one process: ``mlflow server``'s command line, become uvicorn."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_server_is_one_process_serving_tracking_and_artifacts(tmp_path: Path) -> None:
    port = _free_port()
    store, artifacts = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts"
    proc = subprocess.Popen([sys.executable, "-m", "contrail.stack.mlflow_server", "server", "--host", "127.0.0.1",
                             "--port", str(port), "--backend-store-uri", store,
                             "--artifacts-destination", str(artifacts), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "MLflow did not answer /health"
                time.sleep(0.5)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"uvicorn" in cmdline and b"mlflow.server.fastapi_app:app" in cmdline
        assert psutil.Process(proc.pid).children() == []  # no parent left waiting on a uvicorn child

        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=url)
        experiment = client.create_experiment("one-process")
        run = client.create_run(experiment)
        (tmp_path / "note.txt").write_text("served")
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))  # through the server's proxy
        assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["note.txt"]
        assert list(artifacts.rglob("note.txt"))
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) is not None
