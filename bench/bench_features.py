"""Benchmark: the flights_v1 feature job over a whole year in one local job.

Lands every 2013 day of flights and weather into an in-process moto S3, plans all 365 days as
targets (the catch-up case: a year of backfill is one job) and runs ``build_features.main``
with ``--io local`` in a SparkSession started beforehand, so JVM start-up is measured on its
own. Then repeats with a synthetic year ``--scale`` times the size (every flight duplicated
with distinct flight numbers) to check that cost grows near-linearly.

    .venv/bin/python bench/bench_features.py [--scales 1 10] [--days 365] [--master local[2]]

Prints one JSON line per scale and a summary; the JVM start-up is paid once per job run
(spark-submit / EMR step), not per partition.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import sys
import time
from datetime import date, timedelta

import boto3
import pandas as pd

from contrail import catalog, features, lake, nycflights
from contrail_spark import build_features

FLIGHT_NUMBER_STRIDE = 10_000  # real flight numbers stop at 8500: copies never collide


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _day_frames(dataset: str, first: date, days: int) -> dict[date, pd.DataFrame]:
    dates = [first + timedelta(days=k) for k in range(days)]
    return {d: nycflights.day(dataset, d) for d in dates}


def scaled(frame: pd.DataFrame, scale: int) -> pd.DataFrame:
    """``scale`` copies of a day's flights, copy k flying flight number ``flight + k * 10000``."""
    copies = []
    for k in range(scale):
        copy = frame.copy()
        copy["flight"] = copy["flight"] + k * FLIGHT_NUMBER_STRIDE
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def land(s3, bucket: str, dataset: str, dt: date, frame: pd.DataFrame) -> dict:
    body = gzip.compress(frame.to_csv(index=False, na_rep="NA").encode(), compresslevel=6, mtime=0)
    prefix = catalog.landing_prefix(dataset, dt, 1)
    key = f"{prefix}{dataset}.csv.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    manifest = {"dataset": dataset, "dt": dt.isoformat(), "version": 1, "rows": len(frame),
                "objects": [{"key": key, "bytes": len(body), "sha256": lake.sha256_hex(body)}]}
    lake.put_json(s3, bucket, catalog.landing_manifest_key(dataset, dt, 1), manifest)
    return {"version": 1, "manifest": lake.s3_uri(bucket, catalog.landing_manifest_key(dataset, dt, 1)),
            "objects": [f"s3://{bucket}/{key}"]}


def run_scale(spark, s3, scale: int, first: date, days: int) -> dict:
    bucket = f"contrail-bench-x{scale}"
    s3.create_bucket(Bucket=bucket)
    started = time.perf_counter()
    flights = {d: scaled(f, scale) for d, f in _day_frames("flights", first, days).items()}
    weather = _day_frames("weather", first, days)
    validated = {
        "flights": {d: land(s3, bucket, "flights", d, f) for d, f in flights.items()},
        "weather": {d: land(s3, bucket, "weather", d, f) for d, f in weather.items()},
    }
    landing_s = time.perf_counter() - started
    plan = features.plan_features(validated, sorted(flights), feature_set="flights_v1",
                                  job_version=f"bench-x{scale}", bucket=bucket, build=f"bench-x{scale}")
    lake.put_json(s3, bucket, catalog.feature_plan_key("flights_v1", "bench"), plan)

    started = time.perf_counter()
    plan_uri = lake.s3_uri(bucket, catalog.feature_plan_key("flights_v1", "bench"))
    counts = build_features.main(["--plan", plan_uri, "--io", "local"], spark=spark)
    job_s = time.perf_counter() - started
    rows = sum(counts.values())
    assert rows == sum(len(f) for f in flights.values()), "every flight must get a feature row"
    assert len(counts) == days
    return {"scale": scale, "days": days, "rows": rows, "landing_s": round(landing_s, 1),
            "job_s": round(job_s, 1), "rows_per_s": round(rows / job_s)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--shuffle-partitions", type=int, default=4)
    args = parser.parse_args(argv)

    import logging
    import subprocess

    from contrail.stack import local

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("contrail_spark").setLevel(logging.INFO)  # the job's phase timings

    # the emulator in its own process, as in the stack: S3 calls do not share this GIL
    port = _free_port()
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"),
                               "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    local._wait(lambda: local._port_open("127.0.0.1", port), "the emulator", 60, server, None)
    os.environ.update({
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
    })
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    s3 = boto3.client("s3")

    started = time.perf_counter()
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(args.master).appName("contrail-bench-features")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "3g")
        .getOrCreate()
    )
    spark.range(1).count()  # the first job pays for executor and codegen warm-up
    jvm_s = time.perf_counter() - started
    spark.sparkContext.setLogLevel("ERROR")
    print(json.dumps({"jvm_startup_s": round(jvm_s, 1), "master": args.master}), flush=True)

    results = []
    try:
        for scale in args.scales:
            result = run_scale(spark, s3, scale, nycflights.FIRST_DAY, args.days)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        spark.stop()
        server.terminate()
        server.wait()
    if len(results) > 1:
        base = results[0]
        for r in results[1:]:
            ratio = r["job_s"] / base["job_s"]
            print(f"x{r['scale']} vs x{base['scale']}: "
                  f"{r['rows'] / base['rows']:.1f}x rows in {ratio:.1f}x time")
    return results


if __name__ == "__main__":
    main()
