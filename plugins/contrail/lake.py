"""The lake's storage primitives: the few S3 calls every stage shares (list, read, conditional
create, overwrite, delete). Which key means what is the catalog's business
(:mod:`contrail.catalog`); this module never builds a key.

The helpers take a boto3 S3 client (from ``S3Hook(...).get_conn()`` inside Airflow, or
:func:`s3_client` outside it) so callers pick the endpoint once, at the edge.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:  # boto3 is imported lazily: DAG files must parse fast
    from mypy_boto3_s3 import S3Client  # pragma: no cover

    from contrail.settings import Settings

class ImmutableObjectError(RuntimeError):
    """Raised when a write would change an object in an immutable zone."""


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


def delete_keys(s3: "S3Client", bucket: str, keys: Iterable[str]) -> None:
    """Delete ``keys`` in batches of 1,000 (one request each)."""
    keys = list(keys)
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
