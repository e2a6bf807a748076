"""Spark job: build the ``flights_v1`` feature partitions named by a plan.

Consumes a plan JSON written by the orchestrator (``contrail.features.plan_features``)::

    {"feature_set": "flights_v1", "job_version": "<artifact sha>", "bucket": "…",
     "targets": ["2013-01-05", …], "lookback_days": {"flights": 28, "weather": 0},
     "inputs": {"flights": {"2013-01-01": {"version": 1, "manifest": "s3://…/_manifest.json",
                                           "objects": ["s3://…csv.gz"]}, …},
                "weather": {…}}}

plus ``"outputs": {target: {"prefix", "manifest"}}`` (the build each target is staged to), and
stages every target's build there (Parquet parts, then the staged manifest naming them). It
builds no key and publishes nothing: the orchestrator audits the builds and publishes them.
``main`` is extract -> transform -> load, nothing else.

    spark-submit --py-files contrail_spark-<sha>.zip main.py --plan s3://bucket/plan.json --io local
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from typing import Any, Mapping, Sequence

from contrail_spark import lake_io, transforms

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="build_features", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, help="s3:// URI of the plan JSON")
    parser.add_argument("--io", choices=("local", "s3"), default="local",
                        help="local: stage through local disk with boto3; s3: Spark reads s3:// (EMR)")
    return parser.parse_args(list(argv))


def input_uris(plan: Mapping[str, Any], dataset: str) -> list[str]:
    days = plan["inputs"].get(dataset, {})
    return [uri for dt in sorted(days) for uri in days[dt]["objects"]]


def partition_manifest(plan: Mapping[str, Any], dt: str, rows: int, schema: Mapping[str, Any]) -> dict:
    """The ``_manifest.json`` of one feature partition: what it holds and what it was built from."""
    day = date.fromisoformat(dt)
    lookback = plan.get("lookback_days", {})

    def used(dataset: str, d: str) -> bool:
        first = day - timedelta(days=lookback.get(dataset, transforms.LOOKBACK_DAYS))
        return first.isoformat() <= d <= dt

    inputs = {
        dataset: {
            d: {"version": info["version"], "manifest": info["manifest"]}
            for d, info in sorted(days.items())
            if used(dataset, d)
        }
        for dataset, days in sorted(plan["inputs"].items())
    }
    return {
        "feature_set": plan["feature_set"],
        "dt": dt,
        "rows": rows,
        "schema": schema,
        "job_version": plan["job_version"],
        "inputs": inputs,
    }


def main(argv: Sequence[str], spark: Any = None, io: lake_io.LakeIO | None = None) -> dict[str, int]:
    """Run the job; returns rows written per target day.

    ``spark`` is a session the caller owns (a Spark Connect server's, or a test's); spark-submit
    passes none and the job owns (and stops) its session. ``io`` is the lake access ``--io``
    names, already built (with the caller's S3 client); the job closes it.
    """
    args = parse_args(argv)
    owns_session = spark is None
    if owns_session:
        from pyspark.sql import SparkSession

        spark = (
            SparkSession.builder.appName("contrail-build-features")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
    io = lake_io.make_io(args.io) if io is None else io
    try:
        # extract
        plan = io.read_json(args.plan)
        # cached: the transform reads flights four times (three trailing keys + the rows)
        flights = io.read_csv(spark, input_uris(plan, "flights"), transforms.FLIGHTS_SCHEMA).cache()
        weather = io.read_csv(spark, input_uris(plan, "weather"), transforms.WEATHER_SCHEMA)
        # transform
        features = transforms.build_flights_features(flights, weather, plan["targets"])
        # load
        schema = features.schema.jsonValue()
        counts = io.stage_features(
            spark,
            features,
            bucket=plan["bucket"],
            outputs=plan["outputs"],
            manifest_for=lambda dt, rows: partition_manifest(plan, dt, rows, schema),
            sort_by=("flight_id",),
        )
    finally:
        io.close()
        if owns_session:
            spark.stop()
    missing = sorted(set(plan["targets"]) - set(counts))
    if missing:
        raise RuntimeError(f"no flights for planned targets {missing}: their partitions were not staged")
    return counts
