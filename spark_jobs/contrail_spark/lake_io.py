"""The swappable lake I/O of the Spark jobs: where bytes come from and go to, nothing else.

Two implementations of :class:`LakeIO`, picked once by the entry point (``--io``):

* :class:`LocalStagingIO` — local mode. Local Spark has no ``s3a://`` connector here, so
  inputs are staged from S3 to a local directory with boto3 and results uploaded back.
  boto3 honours ``AWS_ENDPOINT_URL``, so the emulator endpoint comes from the environment.
  A year of catch-up is ~730 small objects in and ~365 partitions out, so per-object
  latency, not bytes, is the cost: downloads and partition uploads run on a thread pool,
  each read stages into one directory (one path for Spark to list, not 365: past
  ``parallelPartitionDiscovery.threshold`` paths Spark lists them with a job of its own),
  and rows per partition come from the local Parquet footers.
* :class:`S3DirectIO` — EMR. Spark reads and writes ``s3://`` itself (EMRFS); boto3 only
  moves the written parts into place and writes the markers.

Both stage feature builds the same way (:func:`stage_partitions`): the parts under
deterministic names (``part-00000.snappy.parquet`` …) in the build prefix the plan names, parts
an earlier attempt left there removed, and the staged manifest (naming the parts) last. The job
publishes nothing: the orchestrator audits each build with its gate and publishes it (the
catalog's write-audit-publish). Transforms never see any of this.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

PARTITION_COLUMN = "_partition"  # scratch-only copy of ``dt``: the files keep their ``dt`` column
# concurrent S3 requests of one job: they wait on the network, not the 2 cores
IO_THREADS = 8


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


@dataclass(frozen=True)
class Partition:
    """One partition's build to stage: its build prefix, its parts (``write(key)`` uploads or
    copies one part), and where its staged manifest goes."""

    prefix: str
    parts: Sequence[Callable[[str], None]]
    manifest: Mapping[str, Any]
    manifest_key: str


def stage_partitions(s3: Any, bucket: str, partitions: Sequence[Partition], *,
                     threads: int = IO_THREADS) -> dict[str, list[str]]:
    """Write each partition's build: parts under deterministic names, removal of parts an
    earlier attempt left in the same build, then the staged manifest (naming the parts) last.
    Returns part keys per prefix.

    Nothing here is visible to readers: the orchestrator audits the build and publishes it
    (the catalog's write-audit-publish). One LIST finds what the builds hold now.
    """
    if not partitions:
        return {}
    parent = os.path.commonprefix([p.prefix for p in partitions]).rpartition("/")[0] + "/"
    existing: dict[str, set[str]] = {p.prefix: set() for p in partitions}
    for key in _keys_under(s3, bucket, parent):
        prefix, _, name = key.rpartition("/")
        if prefix + "/" in existing:
            existing[prefix + "/"].add(name)

    def stage(partition: Partition) -> list[str]:
        prefix = partition.prefix
        names = [part_name(i) for i in range(len(partition.parts))]
        for write, name in zip(partition.parts, names):
            write(prefix + name)
        keys = [prefix + n for n in names]
        stale = existing[prefix] - {*names, partition.manifest_key.rpartition("/")[2]}
        _delete_keys(s3, bucket, sorted(prefix + n for n in stale))
        s3.put_object(Bucket=bucket, Key=partition.manifest_key,
                      Body=canonical_json({**partition.manifest, "parts": keys}),
                      ContentType="application/json")
        return keys

    with ThreadPoolExecutor(threads) as pool:
        written = list(pool.map(stage, partitions))
    return {p.prefix: keys for p, keys in zip(partitions, written)}


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

    def stage_features(
        self,
        spark: "SparkSession",
        features: "DataFrame",
        *,
        bucket: str,
        outputs: Mapping[str, Mapping[str, str]],
        manifest_for: Callable[[str, int], Mapping[str, Any]],
        sort_by: Sequence[str],
    ) -> dict[str, int]:
        """Write ``features`` partitioned by ``dt`` and stage each day's build where
        ``outputs[dt]`` (the plan's) says: ``prefix`` for the parts, ``manifest`` for the staged
        manifest. ``manifest_for(dt, rows)`` builds the day's manifest. Returns rows per day.
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
    threads: int = IO_THREADS

    def read_json(self, uri: str) -> Any:
        return read_json_uri(self.s3, uri)

    def stage(self, uris: Sequence[str]) -> Path:
        """Download ``uris`` into one new directory (in parallel); returns the directory.

        Files are named ``<index>-<basename>``: distinct even when two days' objects share a
        name, and the extension (``.csv.gz``) still tells Spark the codec.
        """
        target = self.work_dir / "staged" / uuid.uuid4().hex
        target.mkdir(parents=True)
        started = time.perf_counter()

        def download(item: tuple[int, str]) -> int:
            index, uri = item
            bucket, key = split_s3_uri(uri)
            local = target / f"{index:05d}-{key.rsplit('/', 1)[-1]}"
            partial = local.with_name(".partial-" + local.name)  # hidden from Spark's listing
            self.s3.download_file(bucket, key, str(partial))
            partial.replace(local)
            return local.stat().st_size

        with ThreadPoolExecutor(self.threads) as pool:
            sizes = list(pool.map(download, enumerate(uris)))
        log.info("staged %d objects (%.1f MB) in %.1f s", len(uris), sum(sizes) / 1e6,
                 time.perf_counter() - started)
        return target

    def read_csv(self, spark: "SparkSession", uris: Sequence[str], schema: "StructType") -> "DataFrame":
        if not uris:
            return spark.createDataFrame([], schema)
        return _read_landed_csv(spark, [str(self.stage(uris))], schema)

    def stage_features(self, spark, features, *, bucket, outputs, manifest_for, sort_by):
        out_dir = self.work_dir / "out" / uuid.uuid4().hex
        started = time.perf_counter()
        write_partitioned(features, str(out_dir), sort_by)
        files = {dt: sorted((out_dir / f"{PARTITION_COLUMN}={dt}").glob("part-*.parquet"))
                 for dt in _written_partitions(out_dir)}
        counts = {dt: _parquet_rows(paths) for dt, paths in files.items()}
        log.info("computed and wrote %d partitions (%d rows) in %.1f s", len(counts),
                 sum(counts.values()), time.perf_counter() - started)
        started = time.perf_counter()
        stage_partitions(self.s3, bucket, [
            Partition(outputs[dt]["prefix"], [_uploader(self.s3, bucket, f) for f in files[dt]],
                      manifest_for(dt, counts[dt]), outputs[dt]["manifest"])
            for dt in sorted(counts) if dt in outputs
        ], threads=self.threads)
        log.info("staged %d partitions in %.1f s", len(counts), time.perf_counter() - started)
        shutil.rmtree(out_dir, ignore_errors=True)
        return counts

    def close(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _written_partitions(out_dir: Path) -> list[str]:
    prefix = f"{PARTITION_COLUMN}="
    return sorted(d.name[len(prefix):] for d in out_dir.iterdir() if d.is_dir() and d.name.startswith(prefix))


def _parquet_rows(paths: Sequence[Path]) -> int:
    """Rows in local Parquet files, from their footers (no data read, no Spark job)."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(str(p)).num_rows for p in paths)


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
    threads: int = IO_THREADS

    def read_json(self, uri: str) -> Any:
        return read_json_uri(self.s3, uri)

    def read_csv(self, spark: "SparkSession", uris: Sequence[str], schema: "StructType") -> "DataFrame":
        return _read_landed_csv(spark, uris, schema)

    def stage_features(self, spark, features, *, bucket, outputs, manifest_for, sort_by):
        scratch = f"{self.scratch_prefix}{uuid.uuid4().hex}/"
        write_partitioned(features, f"s3://{bucket}/{scratch}", sort_by)
        counts = count_by_partition(spark, f"s3://{bucket}/{scratch}")
        scratch_parts: dict[str, list[str]] = {dt: [] for dt in counts}
        for key in sorted(_keys_under(self.s3, bucket, scratch)):  # one LIST, not one per day
            directory, _, name = key.rpartition("/")
            dt = directory.rpartition(f"{PARTITION_COLUMN}=")[2]
            if name.startswith("part-") and dt in scratch_parts:
                scratch_parts[dt].append(key)
        stage_partitions(self.s3, bucket, [
            Partition(outputs[dt]["prefix"], [_copier(self.s3, bucket, k) for k in scratch_parts[dt]],
                      manifest_for(dt, counts[dt]), outputs[dt]["manifest"])
            for dt in sorted(counts) if dt in outputs
        ], threads=self.threads)
        _delete_keys(self.s3, bucket, _keys_under(self.s3, bucket, scratch))
        return counts

    def close(self) -> None:
        pass


def make_io(kind: str, environ: Mapping[str, str] | None = None, s3: Any = None) -> LakeIO:
    """``local`` -> :class:`LocalStagingIO` (under ``CONTRAIL_SPARK_WORK_DIR`` if set),
    ``s3`` -> :class:`S3DirectIO`; with ``s3`` (a boto3 client), through it instead of one
    from the environment."""
    environ = os.environ if environ is None else environ
    client = {} if s3 is None else {"s3": s3}
    if kind == "local":
        work = environ.get("CONTRAIL_SPARK_WORK_DIR")
        if work:
            Path(work).mkdir(parents=True, exist_ok=True)
            return LocalStagingIO(work_dir=Path(tempfile.mkdtemp(prefix="contrail-spark-", dir=work)), **client)
        return LocalStagingIO(**client)
    if kind == "s3":
        return S3DirectIO(**client)
    raise ValueError(f"--io must be 'local' or 's3', got {kind!r}")
