"""The durable emulator's snapshots: a walk that races a request is retried, never lost."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest

from contrail.stack import emulator
from contrail.stack.emulator import DurableState, StoredContent


def _racing_snapshots(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    """snapshot_state that fails like a concurrently mutated moto dict ``failures`` times."""
    calls: list[int] = []

    def snapshot(services=emulator.SERVICES):
        calls.append(1)
        if len(calls) <= failures:
            raise RuntimeError("dictionary changed size during iteration")
        return {"s3": {"123456789012": {"us-east-1": "backend"}}}

    monkeypatch.setattr(emulator, "snapshot_state", snapshot)
    monkeypatch.setattr(emulator.time, "sleep", lambda s: None)
    return calls


def test_save_walks_again_when_a_request_changed_a_backend(tmp_path, monkeypatch):
    calls = _racing_snapshots(monkeypatch, failures=2)
    state = DurableState(tmp_path / "state.pkl")
    state.mark_dirty()

    state.save()

    assert len(calls) == 3
    assert pickle.loads((tmp_path / "state.pkl").read_bytes()) == {"s3": {"123456789012": {"us-east-1": "backend"}}}
    assert not state._dirty.is_set()
    assert not (tmp_path / "state.tmp").exists()


def test_save_that_keeps_racing_stays_dirty_and_keeps_the_last_snapshot(tmp_path, monkeypatch):
    (tmp_path / "state.pkl").write_bytes(pickle.dumps({"previous": True}))
    _racing_snapshots(monkeypatch, failures=99)
    state = DurableState(tmp_path / "state.pkl")

    with pytest.raises(RuntimeError, match="changed size"):
        state.save(attempts=3)

    assert state._dirty.is_set()  # the saver thread's next round saves it
    assert pickle.loads((tmp_path / "state.pkl").read_bytes()) == {"previous": True}


def test_fast_timestamps_serialise_as_botocore_did():
    from botocore.utils import parse_to_aware_datetime
    from moto.core import serialize

    from contrail.stack.emulator import fast_timestamps

    values = ["2013-01-01T00:00:00Z", "2026-12-02T00:56:35.519000Z", "2026-12-02T00:56:35+00:00",
              "2026-12-02T00:56:35", "1700000000", datetime(2013, 1, 1, 5, tzinfo=timezone.utc)]
    expected = [parse_to_aware_datetime(v) for v in values]
    original = serialize.parse_to_aware_datetime
    try:
        fast_timestamps()
        fast_timestamps()  # idempotent: the fast path wraps botocore's once
        assert serialize.parse_to_aware_datetime.fast_iso
        got = [serialize.parse_to_aware_datetime(v) for v in values]
        assert got == expected and all(g.utcoffset() == timedelta(0) for g in got)
        stamp = serialize.TimestampSerializer("iso8601")
        assert stamp._convert_timestamp_to_str("2026-12-02T00:56:35.519000Z", "iso8601") == "2026-12-02T00:56:35.519000Z"
    finally:
        serialize.parse_to_aware_datetime = original


def test_the_snapshot_keeps_the_hot_tier_store_items_and_stream_positions(monkeypatch):
    """Stop/start of the emulator (snapshot, fresh backends, restore) loses no online-store item
    and no Kinesis record or position: a consumer resumes after its checkpointed sequence number."""
    import boto3
    from moto import mock_aws

    from contrail import online_store

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    assert {"dynamodb", "kinesis"} <= set(emulator.SERVICES)
    emulator._register_lock_pickling()
    item = {**online_store.online_key("carrier#UA", "2013-01-02"), "token": {"S": "t"}, "carrier_ontime_7d": {"N": "0.5"}}
    with mock_aws():
        dynamodb, kinesis = boto3.client("dynamodb"), boto3.client("kinesis")
        online_store.ensure_table(dynamodb, "t-online")
        dynamodb.put_item(TableName="t-online", Item=item)
        kinesis.create_stream(StreamName="t-live", ShardCount=1)
        sequences = [kinesis.put_record(StreamName="t-live", Data=f"{i}\n".encode(), PartitionKey="k")["SequenceNumber"]
                     for i in range(3)]
        blob = pickle.dumps(emulator.snapshot_state(), protocol=pickle.HIGHEST_PROTOCOL)
    with mock_aws():  # a new process: empty backends until the snapshot is restored
        dynamodb, kinesis = boto3.client("dynamodb"), boto3.client("kinesis")
        assert dynamodb.list_tables()["TableNames"] == []
        assert emulator.restore_state(pickle.loads(blob)) > 0
        assert dynamodb.get_item(TableName="t-online", Key=online_store.online_key("carrier#UA", "2013-01-02"))["Item"] == item
        assert dynamodb.describe_time_to_live(TableName="t-online")["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
        (shard,) = kinesis.list_shards(StreamName="t-live")["Shards"]
        iterator = kinesis.get_shard_iterator(StreamName="t-live", ShardId=shard["ShardId"],
                                              ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                              StartingSequenceNumber=sequences[0])["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator)["Records"]
        assert [r["Data"] for r in records] == [b"1\n", b"2\n"]
        assert kinesis.put_record(StreamName="t-live", Data=b"3\n", PartitionKey="k")["SequenceNumber"] > sequences[-1]


def test_snapshot_keeps_object_bytes_in_content_files_written_once(tmp_path, monkeypatch):
    """The pickle holds keys without their bytes; each content is one file, written by the first
    snapshot after its PUT and deleted once no key holds it; a restart reads every version back."""
    import boto3
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    emulator._register_lock_pickling()
    big = b"x" * 200_000
    state = DurableState(tmp_path / "state.pkl")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="lake")
        s3.put_bucket_versioning(Bucket="lake", VersioningConfiguration={"Status": "Enabled"})
        first = s3.put_object(Bucket="lake", Key="a.csv", Body=big)["VersionId"]
        s3.put_object(Bucket="lake", Key="a.csv", Body=b"second version")
        s3.put_object(Bucket="lake", Key="same.csv", Body=b"second version")  # same content: one file
        s3.put_object(Bucket="lake", Key="gone.csv", Body=b"deleted before the next snapshot")
        state.save()
        files = {p.name: p.stat().st_mtime_ns for p in state.objects.directory.iterdir()}
        assert len(files) == 3
        assert (tmp_path / "state.pkl").stat().st_size < len(big)  # the bytes are not in the pickle

        s3.delete_objects(Bucket="lake", Delete={"Objects": [{"Key": "gone.csv", "VersionId": v["VersionId"]}
                                                             for v in s3.list_object_versions(Bucket="lake", Prefix="gone")["Versions"]]})
        monkeypatch.setattr(emulator.hashlib, "sha256", lambda data: pytest.fail("a known key was hashed again"))
        state.save()
        kept = {p.name: p.stat().st_mtime_ns for p in state.objects.directory.iterdir()}
        assert len(kept) == 2 and all(kept[name] == files[name] for name in kept)  # none rewritten
        monkeypatch.undo()
    with mock_aws():  # a restart: fresh backends until the snapshot is restored
        s3 = boto3.client("s3")
        assert DurableState(tmp_path / "state.pkl").load() > 0
        assert s3.get_object(Bucket="lake", Key="a.csv", VersionId=first)["Body"].read() == big
        assert s3.get_object(Bucket="lake", Key="a.csv")["Body"].read() == b"second version"
        assert s3.get_object(Bucket="lake", Key="same.csv")["Body"].read() == b"second version"
        assert "gone.csv" not in {o["Key"] for o in s3.list_objects_v2(Bucket="lake").get("Contents", [])}


def test_a_snapshot_with_the_bytes_inline_still_loads(tmp_path, monkeypatch):
    """State files written before the content files read as they are."""
    import boto3
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    emulator._register_lock_pickling()
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="lake")
        boto3.client("s3").put_object(Bucket="lake", Key="k", Body=b"inline")
        (tmp_path / "state.pkl").write_bytes(pickle.dumps(emulator.snapshot_state(), protocol=pickle.HIGHEST_PROTOCOL))
    with mock_aws():
        assert DurableState(tmp_path / "state.pkl").load() > 0
        assert boto3.client("s3").get_object(Bucket="lake", Key="k")["Body"].read() == b"inline"


def test_a_snapshotted_key_reads_its_bytes_from_its_content_file(tmp_path, monkeypatch):
    """After a snapshot the emulator holds no object's bytes: GETs, ranges and ETags read the
    content file, and a new value set on the key (moto's setter) is held in memory again."""
    import boto3
    from moto import mock_aws
    from moto.backends import get_backend

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    emulator._register_lock_pickling()
    body = bytes(range(256)) * 1000
    state = DurableState(tmp_path / "state.pkl")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="lake")
        etag = s3.put_object(Bucket="lake", Key="k", Body=body)["ETag"]
        state.save()
        key = get_backend("s3")["123456789012"]["aws"].get_object("lake", "k")
        assert isinstance(key._value_buffer, StoredContent) and key._value_buffer.stored
        assert s3.get_object(Bucket="lake", Key="k")["Body"].read() == body
        assert s3.get_object(Bucket="lake", Key="k", Range="bytes=256-511")["Body"].read() == bytes(range(256))
        key._etag = None  # computed again, from the file
        assert s3.head_object(Bucket="lake", Key="k")["ETag"] == etag
        key.value = b"set again"
        assert not key._value_buffer.stored and key.value == b"set again"
        assert (state.objects.directory / key._value_buffer.path.name).read_bytes() == body  # the file stays
        state.save()
        assert key._value_buffer.stored and key.value == b"set again"


def test_stored_content_reads_like_a_file(tmp_path):
    path = tmp_path / "content"
    path.write_bytes(b"0123456789")
    content = StoredContent(path)
    assert content.read(4) == b"0123" and content.read(3) == b"456" and content.tell() == 7
    assert content.seek(-2, 2) == 8 and content.read() == b"89"
    content.seek(0)
    content.truncate()
    content.write(b"new")
    content.seek(0)
    assert content.read() == b"new" and not content.stored and path.read_bytes() == b"0123456789"
