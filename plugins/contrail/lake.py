"""The lake: one bucket whose prefixes are zones, and the few S3 primitives every stage shares.

Key builders are pure functions so every stage names partitions the same way. The I/O
helpers take a boto3 S3 client (from ``S3Hook(...).get_conn()`` inside Airflow, or
:func:`s3_client` outside it) so callers pick the endpoint once, at the edge.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # boto3 is imported lazily: DAG files must parse fast
    from mypy_boto3_s3 import S3Client  # pragma: no cover

    from contrail.settings import Settings

ZONES = ("incoming", "stream", "landing", "quarantine", "quality", "validated", "features",
         "predictions", "warm", "artifacts", "logs", "deadletter")


class ImmutableObjectError(RuntimeError):
    """Raised when a write would change an object in an immutable zone."""


def dt_str(dt: date | str) -> str:
    return dt if isinstance(dt, str) else dt.isoformat()


def incoming_prefix(dataset: str, dt: date | str) -> str:
    """Where upstream drops a day's export: ``incoming/<dataset>/<date>/``."""
    return f"incoming/{dataset}/{dt_str(dt)}/"


def landing_partition(dataset: str, dt: date | str) -> str:
    return f"landing/{dataset}/dt={dt_str(dt)}/"


def landing_prefix(dataset: str, dt: date | str, version: int) -> str:
    """One immutable version of a landed partition: ``landing/<ds>/dt=…/v=0001/``."""
    return f"{landing_partition(dataset, dt)}v={version:04d}/"


def quarantine_prefix(dataset: str, dt: date | str) -> str:
    return f"quarantine/{dataset}/dt={dt_str(dt)}/"


def quality_result_key(dataset: str, dt: date | str, version: int) -> str:
    return f"quality/results/{dataset}/dt={dt_str(dt)}/v={version:04d}.json"


def validated_pointer_key(dataset: str, dt: date | str) -> str:
    return f"validated/{dataset}/dt={dt_str(dt)}/_pointer.json"


def features_prefix(feature_set: str, dt: date | str) -> str:
    return f"features/{feature_set}/dt={dt_str(dt)}/"


def predictions_prefix(model_name: str, dt: date | str) -> str:
    return f"predictions/{model_name}/dt={dt_str(dt)}/"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


LOCAL_CREDENTIALS = {"aws_access_key_id": "contrail-local", "aws_secret_access_key": "contrail-local"}


def client_kwargs(settings: "Settings") -> dict[str, Any]:
    """boto3 client arguments: the emulator (any key works) locally, the default chain on AWS."""
    if settings.is_local:
        return {"endpoint_url": settings.emulator_url, "region_name": settings.region, **LOCAL_CREDENTIALS}
    return {"region_name": settings.region}


def client(service: str, settings: "Settings") -> Any:
    """A boto3 client for code running outside Airflow (CLI, simulator, demo, benchmarks)."""
    import boto3

    return boto3.client(service, **client_kwargs(settings))


def s3_client(settings: "Settings") -> "S3Client":
    return client("s3", settings)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str


def list_objects(s3: "S3Client", bucket: str, prefix: str) -> Iterator[ObjectInfo]:
    """Every object under ``prefix``, following pagination."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield ObjectInfo(key=obj["Key"], size=obj["Size"], etag=obj["ETag"].strip('"'))


def exists(s3: "S3Client", bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def read_bytes(s3: "S3Client", bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def read_json(s3: "S3Client", bucket: str, key: str) -> Any:
    return json.loads(read_bytes(s3, bucket, key))


def json_bytes(doc: Any) -> bytes:
    """Canonical JSON: sorted keys, so equal documents are equal bytes."""
    return json.dumps(doc, sort_keys=True, indent=2, default=str).encode()


def put_immutable(s3: "S3Client", bucket: str, key: str, body: bytes, **extra: Any) -> bool:
    """Create ``key`` only if absent. Returns True if written, False if identical bytes exist.

    Uses S3 conditional writes (``If-None-Match: *``) so two writers can never race an
    overwrite; an existing object with different bytes raises :class:`ImmutableObjectError`.
    """
    from botocore.exceptions import ClientError

    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **extra)
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise
    if sha256_hex(read_bytes(s3, bucket, key)) == sha256_hex(body):
        return False
    raise ImmutableObjectError(f"s3://{bucket}/{key} already exists with different content; "
                               "immutable zones are never overwritten")


def put_json(s3: "S3Client", bucket: str, key: str, doc: Any) -> None:
    """Overwrite-allowed JSON write, for zones whose rule permits it (quality, validated, features)."""
    s3.put_object(Bucket=bucket, Key=key, Body=json_bytes(doc), ContentType="application/json")
