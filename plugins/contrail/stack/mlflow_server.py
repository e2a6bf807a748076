"""MLflow's tracking server as one process.

``mlflow server`` validates its options, initialises the stores (the database migrations) and
sets its workers' environment, then starts uvicorn as a child process and only waits on it:
a second Python process that has imported MLflow whole (about 200 MiB) for nothing. This runs
the same command line through MLflow's own CLI, but at the point where MLflow would start
uvicorn, this process becomes uvicorn (``exec``) with the environment MLflow built for it. The
stack then supervises, signals and measures the server itself.

    python -m contrail.stack.mlflow_server server --host 127.0.0.1 --port 5000 ...
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn


def become(cmd: list[str], *, extra_env: dict[str, str] | None = None, **_: Any) -> NoReturn:
    """Replace this process with ``cmd`` (what MLflow would have started as its child)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, {**os.environ, **(extra_env or {})})


def main(argv: list[str] | None = None) -> None:
    import mlflow.server
    from mlflow.cli import cli

    mlflow.server._exec_cmd = become  # where ``_run_server`` starts the server process
    cli.main(args=sys.argv[1:] if argv is None else argv, prog_name="mlflow")


if __name__ == "__main__":
    main()
