"""The swappable lake I/O of the Spark jobs: where bytes come from and go to, nothing else.

Two implementations of :class:`LakeIO`, picked once by the entry point (``--io``):

* :class:`LocalStagingIO` — local mode. Local Spark has no ``s3a://`` connector here, so
  inputs are staged from S3 to a local directory with boto3 and results uploaded back.
  boto3 honours ``AWS_ENDPOINT_URL``, so the emulator endpoint comes from the environment.
* :class:`S3DirectIO` — EMR. Spark reads and writes ``s3://`` itself (EMRFS); boto3 only
  moves the written parts into place and writes the markers.

Both publish a feature partition the same way (:func:`publish_partition`), so readers see
the same contract: a partition is trusted only when its ``_SUCCESS`` exists. A (re-)publish
removes ``_SUCCESS`` first, writes the parts under deterministic names
(``part-00000.snappy.parquet`` …), removes parts left by an earlier run, writes
``_manifest.json`` and writes ``_SUCCESS`` last. Transforms never see any of this.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

SUCCESS_MARKER = "_SUCCESS"
MANIFEST_NAME = "_manifest.json"
PARTITION_COLUMN = "_partition"  # scratch-only copy of ``dt``: the files keep their ``dt`` column


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def s3_client() -> Any:
    """boto3 S3 client; endpoint, region and credentials come from the standard AWS environment."""
    import boto3

    return boto3.client("s3")


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, indent=2, default=str).encode()


def read_json_uri(s3: Any, uri: str) -> Any:
    bucket, key = split_s3_uri(uri)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def _delete_keys(s3: Any, bucket: str, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})


def part_name(index: int) -> str:
    return f"part-{index:05d}.snappy.parquet"


def publish_partition(
    s3: Any,
    bucket: str,
    prefix: str,
    parts: Sequence[Callable[[str], None]],
    manifest: Mapping[str, Any],
) -> list[str]:
    """Publish one partition under ``prefix`` atomically for readers that honour ``_SUCCESS``.

    ``parts[i](key)`` writes the i-th part to ``key`` (an upload or a server-side copy).
    Returns the part keys written.
    """
    s3.delete_object(Bucket=bucket, Key=prefix + SUCCESS_MARKER)
    part_keys = [prefix + part_name(i) for i in range(len(parts))]
    for write, key in zip(parts, part_keys):
        write(key)
    keep = set(part_keys) | {prefix + MANIFEST_NAME}
    # only direct children: the partition prefix owns no sub-prefixes
    stale = [k for k in _keys_under(s3, bucket, prefix) if k not in keep and "/" not in k[len(prefix):]]
    _delete_keys(s3, bucket, stale)
    s3.put_object(Bucket=bucket, Key=prefix + MANIFEST_NAME, Body=canonical_json(dict(manifest)),
                  ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=prefix + SUCCESS_MARKER, Body=b"")
    return part_keys


def write_partitioned(features: "DataFrame", target: str, sort_by: Sequence[str]) -> None:
    """Write ``features`` as Parquet, one file per ``dt``, rows sorted: identical re-runs.

    Repartitioning on ``dt`` puts each day in exactly one task, so each day is one file.
    """
    from pyspark.sql import functions as F

    # timestamps as INT64 micros marked UTC-adjusted (not legacy INT96): pandas, pyarrow and
    # GX then read ``time_hour`` as a tz-aware UTC instant
    features.sparkSession.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    (
        features.withColumn(PARTITION_COLUMN, F.col("dt"))
        .repartition(PARTITION_COLUMN)
        # the partition column leads the sort, else the writer re-sorts by it and loses our order
        .sortWithinPartitions(PARTITION_COLUMN, *sort_by)
        .write.mode("overwrite")
        .option("compression", "snappy")
        .partitionBy(PARTITION_COLUMN)
        .parquet(target)
    )


def count_by_partition(spark: "SparkSession", written: str) -> dict[str, int]:
    """Rows per ``dt`` of a :func:`write_partitioned` output (Parquet footers, no data scan)."""
    rows = spark.read.parquet(written).groupBy(PARTITION_COLUMN).count().collect()
    return {str(r[PARTITION_COLUMN]): int(r["count"]) for r in rows}


class LakeIO(Protocol):
    """What a Spark job needs from the lake."""

    def read_json(self, uri: str) -> Any: ...

    def read_csv(self, spark: "SparkSession", uris: Sequence[str], schema: "StructType") -> "DataFrame":
        ...

    def publish_features(
        self,
        spark: "SparkSession",
        features: "DataFrame",
        *,
        bucket: str,
        prefix_for: Callable[[str], str],
        manifest_for: Callable[[str, int], Mapping[str, Any]],
        sort_by: Sequence[str],
    ) -> dict[str, int]:
        """Write ``features`` partitioned by ``dt`` and publish each day under ``prefix_for(dt)``.

        ``manifest_for(dt, rows)`` builds the day's manifest. Returns rows per day.
        """
        ...


def _read_landed_csv(spark: "SparkSession", paths: Sequence[str], schema: "StructType") -> "DataFrame":
    # landed CSVs: header row, "NA" for null, gzip (decompressed by extension)
    return (
        spark.read.schema(schema)
        .option("header", True)
        .option("nullValue", "NA")
        .option("mode", "FAILFAST")
        .csv(list(paths))
    )


@dataclass
class LocalStagingIO:
    """Local mode: stage S3 objects to ``work_dir`` with boto3; upload results back."""

    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="contrail-spark-")))
    s3: Any = field(default_factory=s3_client)

    def read_json(self, uri: str) -> Any:
        return read_json_uri(self.s3, uri)

    def stage(self, uri: str) -> Path:
        bucket, key = split_s3_uri(uri)
        local = self.work_dir / "staged" / bucket / key
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            partial = local.with_name(local.name + ".partial")
            self.s3.download_file(bucket, key, str(partial))
            partial.replace(local)
        return local

    def read_csv(self, spark: "SparkSession", uris: Sequence[str], schema: "StructType") -> "DataFrame":
        return _read_landed_csv(spark, [str(self.stage(u)) for u in uris], schema)

    def publish_features(self, spark, features, *, bucket, prefix_for, manifest_for, sort_by):
        out_dir = self.work_dir / "out" / uuid.uuid4().hex
        write_partitioned(features, str(out_dir), sort_by)
        counts = count_by_partition(spark, str(out_dir))
        for dt in sorted(counts):
            files = sorted((out_dir / f"{PARTITION_COLUMN}={dt}").glob("part-*.parquet"))
            parts = [_uploader(self.s3, bucket, f) for f in files]
            publish_partition(self.s3, bucket, prefix_for(dt), parts, manifest_for(dt, counts[dt]))
        shutil.rmtree(out_dir, ignore_errors=True)
        return counts

    def close(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _uploader(s3: Any, bucket: str, path: Path) -> Callable[[str], None]:
    return lambda key: s3.upload_file(str(path), bucket, key)


def _copier(s3: Any, bucket: str, source_key: str) -> Callable[[str], None]:
    return lambda key: s3.copy({"Bucket": bucket, "Key": source_key}, bucket, key)


@dataclass
class S3DirectIO:
    """EMR: Spark reads and writes ``s3://`` directly; parts are written to a scratch prefix
    (``tmp/spark/<run>/``) and copied server-side to their deterministic names."""

    scratch_prefix: str = "tmp/spark/"
    s3: Any = field(default_factory=s3_client)

    def read_json(self, uri: str) -> Any:
        return read_json_uri(self.s3, uri)

    def read_csv(self, spark: "SparkSession", uris: Sequence[str], schema: "StructType") -> "DataFrame":
        return _read_landed_csv(spark, uris, schema)

    def publish_features(self, spark, features, *, bucket, prefix_for, manifest_for, sort_by):
        scratch = f"{self.scratch_prefix}{uuid.uuid4().hex}/"
        write_partitioned(features, f"s3://{bucket}/{scratch}", sort_by)
        counts = count_by_partition(spark, f"s3://{bucket}/{scratch}")
        for dt in sorted(counts):
            keys = sorted(
                k for k in _keys_under(self.s3, bucket, f"{scratch}{PARTITION_COLUMN}={dt}/")
                if k.rsplit("/", 1)[-1].startswith("part-")
            )
            parts = [_copier(self.s3, bucket, k) for k in keys]
            publish_partition(self.s3, bucket, prefix_for(dt), parts, manifest_for(dt, counts[dt]))
        _delete_keys(self.s3, bucket, _keys_under(self.s3, bucket, scratch))
        return counts

    def close(self) -> None:
        pass


def make_io(kind: str, environ: Mapping[str, str] | None = None) -> LakeIO:
    """``local`` -> :class:`LocalStagingIO` (under ``CONTRAIL_SPARK_WORK_DIR`` if set),
    ``s3`` -> :class:`S3DirectIO`."""
    environ = os.environ if environ is None else environ
    if kind == "local":
        work = environ.get("CONTRAIL_SPARK_WORK_DIR")
        if work:
            Path(work).mkdir(parents=True, exist_ok=True)
            return LocalStagingIO(work_dir=Path(tempfile.mkdtemp(prefix="contrail-spark-", dir=work)))
        return LocalStagingIO()
    if kind == "s3":
        return S3DirectIO()
    raise ValueError(f"--io must be 'local' or 's3', got {kind!r}")
