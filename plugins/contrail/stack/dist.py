"""``make dist``: the files an Amazon MWAA environment (or any Airflow) takes, under ``dist/mwaa/``.

    dags/contrail_dags.zip   the DAG files, a packaged-DAG zip (MWAA: the DAGs folder)
    plugins.zip              the ``contrail`` and ``contrail_spark`` packages with their package
                             data (config, expectations, the spark-submit entry file), and the
                             plugins folder's ``.airflowignore`` (Airflow imports only the UI
                             plugin's module from the folder; the rest is imported by name)
    requirements.txt         the Airflow constraints line, then every runtime requirement pinned
                             to requirements.lock (Airflow itself is the environment's)

Every zip is deterministic (sorted entries, fixed timestamps and modes, no bytecode): the same
tree always gives the same bytes, so an unchanged upload is visibly unchanged. Links in the
tree (``plugins/contrail/expectations``, ``contrail_spark/main.py``) are stored as the files
they point to.

    python -m contrail.stack.dist [OUT_DIR]
"""

from __future__ import annotations

import io
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Iterable

from contrail.settings import REPO_ROOT

PLUGINS_IGNORE = REPO_ROOT / "plugins" / ".airflowignore"

# requirements.in entries that are not the workers' runtime: Airflow is the environment's own,
# the rest serve tests and the local emulator
NOT_RUNTIME: frozenset[str] = frozenset({"apache-airflow", "moto", "pytest", "pytest-timeout", "cfn-lint"})
PYTHON_VERSION = "3.11"
CONSTRAINTS_URL = ("https://raw.githubusercontent.com/apache/airflow/constraints-{airflow}/"
                   "constraints-{python}.txt")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_PARTS = {"__pycache__", ".pytest_cache"}


def _files(root: Path) -> list[Path]:
    """Files under ``root``, links followed, bytecode and caches left out, in a stable order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_PARTS)
        found += [Path(dirpath) / name for name in filenames if not name.endswith((".pyc", ".pyo"))]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def deterministic_zip(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A zip of ``(name, content)`` pairs, byte-for-byte reproducible."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, body in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, body, compresslevel=9)
    return buffer.getvalue()


def tree_entries(root: Path, prefix: str = "") -> list[tuple[str, bytes]]:
    return [(prefix + path.relative_to(root).as_posix(), path.read_bytes()) for path in _files(root)]


def dags_zip(dags_dir: Path = REPO_ROOT / "dags") -> bytes:
    """The DAG files at the zip's root (Airflow's packaged-DAG shape)."""
    return deterministic_zip((p.name, p.read_bytes()) for p in sorted(dags_dir.glob("*.py")))


def plugins_zip(packages: Iterable[Path] | None = None) -> bytes:
    """``contrail/…`` and ``contrail_spark/…`` at the zip's root: MWAA puts the extracted
    plugins folder on ``sys.path``, so both import as they do when installed."""
    if packages is None:
        import contrail
        import contrail_spark

        packages = [Path(contrail.__file__).parent, Path(contrail_spark.__file__).parent]
    entries: list[tuple[str, bytes]] = [(PLUGINS_IGNORE.name, PLUGINS_IGNORE.read_bytes())]
    for package in packages:
        entries += tree_entries(package, f"{package.name}/")
    return deterministic_zip(entries)


def _requirement_name(line: str) -> str:
    return re.split(r"[\[<>=!~;\s]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def requirements_txt(requirements_in: str, lock: str, *, python: str = PYTHON_VERSION) -> str:
    """MWAA's ``requirements.txt`` (pure): the constraints of the pinned Airflow, then each
    runtime requirement of ``requirements_in`` (extras kept) pinned to its ``lock`` version."""
    pins = {}
    for line in lock.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    airflow = pins.get("apache-airflow")
    if not airflow:
        raise ValueError("requirements.lock pins no apache-airflow")
    lines = [f'--constraint "{CONSTRAINTS_URL.format(airflow=airflow, python=python)}"']
    for raw in requirements_in.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = _requirement_name(line)
        if name in NOT_RUNTIME:
            continue
        if name not in pins:
            raise ValueError(f"{name} is in requirements.in but not in requirements.lock: run `make lock`")
        extras = re.match(r"^[A-Za-z0-9_.\-]+(\[[^\]]+\])?", line).group(1) or ""
        lines.append(f"{name}{extras}=={pins[name]}")
    return "\n".join(lines) + "\n"


def build(out_dir: Path | str, repo: Path = REPO_ROOT) -> dict[str, Path]:
    """Write the MWAA files into ``out_dir`` (replacing earlier ones); returns their paths."""
    out = Path(out_dir)
    (out / "dags").mkdir(parents=True, exist_ok=True)
    written = {
        "dags": out / "dags" / "contrail_dags.zip",
        "plugins": out / "plugins.zip",
        "requirements": out / "requirements.txt",
    }
    written["dags"].write_bytes(dags_zip(repo / "dags"))
    written["plugins"].write_bytes(plugins_zip())
    written["requirements"].write_text(requirements_txt((repo / "requirements.in").read_text(),
                                                        (repo / "requirements.lock").read_text()))
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    written = build(argv[0] if argv else REPO_ROOT / "dist" / "mwaa")
    for kind, path in written.items():
        print(f"{kind:13s} {path}  ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
