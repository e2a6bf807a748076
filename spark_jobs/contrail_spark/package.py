"""Package the ``contrail_spark`` code as the artifact spark-submit ships with ``--py-files``.

The zip is deterministic (sorted entries, fixed timestamps and permissions, no bytecode), so
its name ``contrail_spark-<sha256[:12]>.zip`` is a content hash: the same code always gives
the same artifact, and the hash is the ``job_version`` recorded in every feature manifest.

Besides the package's own files the zip holds the data contract
(``contrail_spark/data_contract.json``, from ``plugins/contrail/config/``): the job's read
schemas are built from it (:mod:`contrail_spark.contract`), and a contract change is a new
artifact, so a new ``job_version``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

from contrail_spark.contract import CONTRACT_NAME, plugin_contract_bytes

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE_NAME = PACKAGE_DIR.name
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's epoch


def _source_files(package_dir: Path) -> list[Path]:
    return sorted(
        (p for p in package_dir.rglob("*")
         if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")),
        key=lambda p: p.relative_to(package_dir).as_posix(),
    )


def _entries(package_dir: Path, contract: bytes) -> list[tuple[str, bytes]]:
    """(name in the zip, content) in name order: the package's files plus the data contract."""
    entries = {path.relative_to(package_dir).as_posix(): path.read_bytes()
               for path in _source_files(package_dir)}
    entries[CONTRACT_NAME] = contract  # wins over a stray copy in the source tree
    return [(f"{package_dir.name}/{name}", entries[name]) for name in sorted(entries)]


def artifact_bytes(package_dir: Path = PACKAGE_DIR, contract: bytes | None = None) -> bytes:
    """The zip archive of the package and the data contract (default: the committed one),
    byte-for-byte reproducible."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in _entries(package_dir, plugin_contract_bytes() if contract is None else contract):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the build host is
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def build_artifact(out_dir: Path | str, package_dir: Path = PACKAGE_DIR) -> Path:
    """Write ``contrail_spark-<sha256[:12]>.zip`` into ``out_dir`` and return its path."""
    data = artifact_bytes(package_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{package_dir.name}-{hashlib.sha256(data).hexdigest()[:12]}.zip"
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path


def artifact_version(path: Path | str) -> str:
    """The content hash in an artifact's name: ``contrail_spark-ab12….zip`` -> ``ab12…``."""
    return Path(path).stem.rsplit("-", 1)[-1]


def upload_artifact(s3: Any, bucket: str, path: Path | str, key: str) -> str:
    """Upload to ``key`` (the catalog's ``artifacts/spark/<name>``) unless already there (names
    are content hashes).

    Returns the artifact's ``s3://`` URI.
    """
    from botocore.exceptions import ClientError

    path = Path(path)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
            raise
        s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"
