"""The Spark jobs' lake I/O without Spark: staging, the build protocol, the EMR path.

``S3DirectIO`` runs on EMR only (local Spark has no s3a here); its Spark calls are replaced by
a stand-in that writes what Spark would write to the scratch prefix, so everything it does
with S3 itself (one listing of the scratch parts, server-side copies, the publish protocol,
scratch clean-up) runs against moto.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pytest

from contrail_spark import lake_io
from contrail_spark.lake_io import (
    PARTITION_COLUMN,
    LocalStagingIO,
    Partition,
    S3DirectIO,
    stage_partitions,
)

BUCKET = "contrail-lake-io"


@pytest.fixture
def s3(moto_s3):
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


class RecordingS3:
    """Passes calls through to a real client and records the mutating ones, in order."""

    MUTATING = {"put_object", "delete_object", "delete_objects", "upload_file", "copy"}

    def __init__(self, client: Any):
        self.client = client
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if name not in self.MUTATING:
            return attr

        def record(*args: Any, **kwargs: Any) -> Any:
            if name == "delete_objects":
                target = sorted(o["Key"] for o in kwargs["Delete"]["Objects"])
            elif name == "upload_file":
                target = args[2]
            elif name == "copy":
                target = args[2]
            else:
                target = kwargs["Key"]
            self.calls.append((name, target))
            return attr(*args, **kwargs)

        return record


def _keys(s3, prefix: str) -> list[str]:
    return sorted(o["Key"][len(prefix):] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def _writer(s3, body: bytes):
    return lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def _build(dt: str, build: str = "b1") -> str:
    return f"features/fs/dt={dt}/b={build}/"


def _partition(s3, dt: str, parts: int, tag: str, build: str = "b1") -> Partition:
    prefix = _build(dt, build)
    return Partition(prefix, [_writer(s3, f"{tag}-{dt}-{i}".encode()) for i in range(parts)],
                     {"dt": dt, "rows": parts, "tag": tag}, prefix + "_manifest.json")


def test_staging_writes_parts_then_the_staged_manifest_last_and_publishes_nothing(s3):
    recorder = RecordingS3(s3)
    written = stage_partitions(recorder, BUCKET, [_partition(recorder, d, 1, "a")
                                                  for d in ("2013-01-01", "2013-01-02")])

    assert written == {_build(d): [_build(d) + "part-00000.snappy.parquet"] for d in ("2013-01-01", "2013-01-02")}
    for dt in ("2013-01-01", "2013-01-02"):
        prefix = _build(dt)
        mine = [c for c in recorder.calls if c[1].startswith(prefix)]
        assert mine == [("put_object", prefix + "part-00000.snappy.parquet"),
                        ("put_object", prefix + "_manifest.json")]
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix + "_manifest.json")["Body"].read())
        assert manifest == {"dt": dt, "rows": 1, "tag": "a", "parts": [prefix + "part-00000.snappy.parquet"]}
        # the job never writes the partition's own manifest or marker: that is publishing
        assert _keys(s3, f"features/fs/dt={dt}/") == ["b=b1/_manifest.json", "b=b1/part-00000.snappy.parquet"]
    assert not [c for c in recorder.calls if c[0].startswith("delete")]  # nothing stale to remove


def test_restaging_a_build_removes_parts_an_earlier_attempt_left(s3):
    stage_partitions(s3, BUCKET, [_partition(s3, "2013-01-01", 3, "old"), _partition(s3, "2013-01-02", 1, "old")])
    s3.put_object(Bucket=BUCKET, Key="features/fs/dt=2013-01-01/b=b1/sub/keep.txt", Body=b"not ours")
    recorder = RecordingS3(s3)

    stage_partitions(recorder, BUCKET, [_partition(recorder, "2013-01-01", 1, "new")])

    prefix = _build("2013-01-01")
    assert recorder.calls[-1] == ("put_object", prefix + "_manifest.json")
    assert _keys(s3, prefix) == ["_manifest.json", "part-00000.snappy.parquet", "sub/keep.txt"]
    assert s3.get_object(Bucket=BUCKET, Key=prefix + "part-00000.snappy.parquet")["Body"].read() == b"new-2013-01-01-0"
    # the partition not in this call is untouched
    assert _keys(s3, _build("2013-01-02")) == ["_manifest.json", "part-00000.snappy.parquet"]


def test_a_failed_part_leaves_no_staged_manifest(s3):
    def broken(key: str) -> None:
        raise OSError(f"disk gone while writing {key}")

    prefix = _build("2013-01-01", "b2")
    with pytest.raises(OSError, match="disk gone"):
        stage_partitions(s3, BUCKET, [Partition(prefix, [broken], {"dt": "x"}, prefix + "_manifest.json")])
    # the gate audits only staged builds: without the manifest there is nothing to publish
    assert _keys(s3, prefix) == []


def test_staging_downloads_into_one_directory_with_distinct_names(s3, tmp_path):
    uris = []
    for day in range(1, 13):
        key = f"landing/flights/dt=2013-01-{day:02d}/v=0001/flights.csv.gz"
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"day {day}".encode())
        uris.append(f"s3://{BUCKET}/{key}")
    io_ = LocalStagingIO(work_dir=tmp_path, s3=s3, threads=4)

    staged = io_.stage(uris)

    files = sorted(staged.iterdir())
    assert [f.name for f in files] == [f"{i:05d}-flights.csv.gz" for i in range(12)]
    assert [f.read_bytes() for f in files] == [f"day {d}".encode() for d in range(1, 13)]


def test_staging_a_missing_object_names_it(s3, tmp_path):
    io_ = LocalStagingIO(work_dir=tmp_path, s3=s3)
    with pytest.raises(Exception, match="404|Not Found|NoSuchKey"):
        io_.stage([f"s3://{BUCKET}/landing/flights/dt=2013-01-01/v=0001/missing.csv.gz"])


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def test_s3_direct_staging_copies_scratch_parts_and_cleans_scratch(s3, monkeypatch):
    """What EMR's job does after Spark wrote ``s3://bucket/tmp/spark/<run>/_partition=<dt>/``."""
    days = {"2013-01-01": 2, "2013-01-02": 1}  # parts per day, as Spark would have written them
    written_to: list[str] = []

    def spark_write(features: Any, target: str, sort_by: Any) -> None:
        bucket, scratch = lake_io.split_s3_uri(target)
        written_to.append(target)
        for dt, parts in days.items():
            for i in range(parts):
                body = _parquet(pd.DataFrame({"dt": [dt], "part": [i]}))
                s3.put_object(Bucket=bucket, Key=f"{scratch}{PARTITION_COLUMN}={dt}/part-{i:05d}-abc.c000.snappy.parquet",
                              Body=body)
            s3.put_object(Bucket=bucket, Key=f"{scratch}{PARTITION_COLUMN}={dt}/.part-00000.crc", Body=b"")
        s3.put_object(Bucket=bucket, Key=f"{scratch}_SUCCESS", Body=b"")

    monkeypatch.setattr(lake_io, "write_partitioned", spark_write)
    monkeypatch.setattr(lake_io, "count_by_partition", lambda spark, written: dict(days))
    recorder = RecordingS3(s3)

    outputs = {dt: {"prefix": _build(dt), "manifest": _build(dt) + "_manifest.json"} for dt in days}
    counts = S3DirectIO(s3=recorder).stage_features(
        None, None, bucket=BUCKET, outputs=outputs,
        manifest_for=lambda dt, rows: {"dt": dt, "rows": rows}, sort_by=("flight_id",))

    assert counts == days
    assert written_to[0].startswith(f"s3://{BUCKET}/tmp/spark/")
    assert _keys(s3, "features/fs/dt=2013-01-01/") == [
        "b=b1/_manifest.json", "b=b1/part-00000.snappy.parquet", "b=b1/part-00001.snappy.parquet"]
    assert _keys(s3, "features/fs/dt=2013-01-02/") == ["b=b1/_manifest.json", "b=b1/part-00000.snappy.parquet"]
    copied = pd.read_parquet(io.BytesIO(s3.get_object(
        Bucket=BUCKET, Key=_build("2013-01-01") + "part-00001.snappy.parquet")["Body"].read()))
    assert copied.to_dict("records") == [{"dt": "2013-01-01", "part": 1}]
    # parallel across partitions, so compared as a set
    assert sorted(c for c in recorder.calls if c[0] == "copy") == [
        ("copy", _build("2013-01-01") + "part-00000.snappy.parquet"),
        ("copy", _build("2013-01-01") + "part-00001.snappy.parquet"),
        ("copy", _build("2013-01-02") + "part-00000.snappy.parquet"),
    ]
    assert _keys(s3, "tmp/spark/") == []  # scratch removed


def test_make_io_picks_the_implementation(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    local = lake_io.make_io("local", {"CONTRAIL_SPARK_WORK_DIR": str(tmp_path)})
    assert isinstance(local, LocalStagingIO) and local.work_dir.parent == tmp_path
    assert isinstance(lake_io.make_io("s3", {}), S3DirectIO)
    with pytest.raises(ValueError, match="--io must be"):
        lake_io.make_io("hdfs", {})
