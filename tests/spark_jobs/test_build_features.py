"""The feature job on real days staged through an in-process moto S3: one stage, small real data."""

from __future__ import annotations

import io
import json
import time
from datetime import date, timedelta

import boto3
import pandas as pd
import pytest

from contrail import catalog, features, lake, nycflights
from contrail_spark import build_features, package, transforms

pytestmark = pytest.mark.spark

BUCKET = "contrail-test-features"
TARGETS = [date(2013, 2, 1), date(2013, 2, 2), date(2013, 2, 3)]
FEATURE_SET = "flights_v1"


@pytest.fixture(scope="module")
def s3(emulator_env):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def validated(s3, land_day) -> dict:
    """Three target days of flights and weather, plus the 28-day flights lookback, landed."""
    days = [TARGETS[0] - timedelta(days=k) for k in range(28, 0, -1)] + TARGETS
    return {
        "flights": {d: land_day(s3, BUCKET, "flights", d) for d in days},
        "weather": {d: land_day(s3, BUCKET, "weather", d) for d in TARGETS},
    }


def put_plan(s3, plan: dict, name: str) -> str:
    key = f"tmp/plans/{name}.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(plan).encode())
    return f"s3://{BUCKET}/{key}"


BUILD = "test-build"


def partition_keys(s3, dt: date) -> list[str]:
    prefix = catalog.features_partition(FEATURE_SET, dt)
    return sorted(o.key[len(prefix):] for o in lake.list_objects(s3, BUCKET, prefix))


def staged_prefix(dt: date, feature_set: str = FEATURE_SET) -> str:
    return catalog.build_prefix(catalog.features_partition(feature_set, dt), BUILD)


def read_partition(s3, dt: date) -> pd.DataFrame:
    body = lake.read_bytes(s3, BUCKET, staged_prefix(dt) + "part-00000.snappy.parquet")
    return pd.read_parquet(io.BytesIO(body))


@pytest.fixture(scope="module")
def first_run(spark, s3, validated):
    plan = features.plan_features(validated, TARGETS, feature_set=FEATURE_SET, job_version="test0001",
                                  bucket=BUCKET, build=BUILD)
    plan_uri = put_plan(s3, plan, "three-days")
    counts = build_features.main(["--plan", plan_uri, "--io", "local"], spark=spark)
    return plan_uri, counts


def test_main_stages_every_target_with_its_manifest_and_publishes_nothing(s3, first_run):
    _, counts = first_run
    expected_rows = {d.isoformat(): len(nycflights.day("flights", d)) for d in TARGETS}
    assert counts == expected_rows
    for d in TARGETS:
        # the build only: the partition's own manifest and _SUCCESS are the orchestrator's to write
        assert partition_keys(s3, d) == [f"b={BUILD}/_manifest.json", f"b={BUILD}/part-00000.snappy.parquet"]
        manifest = lake.read_json(s3, BUCKET, staged_prefix(d) + "_manifest.json")
        assert manifest["parts"] == [staged_prefix(d) + "part-00000.snappy.parquet"]
        assert manifest["rows"] == expected_rows[d.isoformat()]
        assert manifest["job_version"] == "test0001"
        assert [f["name"] for f in manifest["schema"]["fields"]] == list(transforms.FEATURE_COLUMNS)
        # the day itself and its 28-day lookback, each with the version it was built from
        lookback = {(d - timedelta(days=k)).isoformat() for k in range(29)}
        available = {x.isoformat() for x in [TARGETS[0] - timedelta(days=k) for k in range(1, 29)] + TARGETS}
        assert set(manifest["inputs"]["flights"]) == lookback & available
        assert set(manifest["inputs"]["weather"]) == {d.isoformat()}
        assert manifest["inputs"]["weather"][d.isoformat()]["version"] == 1
    # lookback days are inputs only, never outputs
    assert partition_keys(s3, TARGETS[0] - timedelta(days=1)) == []


def test_published_rows_are_the_real_flights_with_history(s3, first_run):
    d = TARGETS[1]
    frame = read_partition(s3, d)
    assert list(frame.columns) == list(transforms.FEATURE_COLUMNS)
    source = nycflights.day("flights", d)
    assert frame["flight_id"].is_unique and len(frame) == len(source)
    assert frame["flight_id"].tolist() == sorted(frame["flight_id"])
    assert (frame["dt"] == d.isoformat()).all()
    assert str(frame["time_hour"].dt.tz) == "UTC"
    assert frame["time_hour"].min() >= pd.Timestamp(f"{d.isoformat()}T05:00:00Z")  # 00:00 EST
    # 28 full days of history: every carrier has volume, and the label matches the source
    assert (frame["carrier_flights_28d"] > 0).all()
    assert frame["carrier_ontime_28d"].between(0, 1).all()
    assert frame["temp"].notna().mean() > 0.9
    cancelled = int(source["dep_time"].isna().sum())
    assert int((frame["label_status"] == "cancelled").sum()) == cancelled
    late = int((source["arr_delay"] >= 15).sum())
    assert int(frame["label"].sum()) == late


def test_rerun_is_identical_and_removes_stale_parts(spark, s3, first_run):
    plan_uri, counts = first_run
    d = TARGETS[0]
    prefix = staged_prefix(d)
    before = lake.read_bytes(s3, BUCKET, prefix + "part-00000.snappy.parquet")
    manifest_before = lake.read_bytes(s3, BUCKET, prefix + "_manifest.json")
    s3.put_object(Bucket=BUCKET, Key=prefix + "part-00007.snappy.parquet", Body=b"left by an older run")

    again = build_features.main(["--plan", plan_uri, "--io", "local"], spark=spark)

    assert again == counts
    assert partition_keys(s3, d) == [f"b={BUILD}/_manifest.json", f"b={BUILD}/part-00000.snappy.parquet"]
    assert lake.read_bytes(s3, BUCKET, prefix + "_manifest.json") == manifest_before
    after = lake.read_bytes(s3, BUCKET, prefix + "part-00000.snappy.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(after)), pd.read_parquet(io.BytesIO(before)))


def test_run_local_through_spark_submit(s3, validated, emulator_env, tmp_path):
    """The real path: artifact zip + spark-submit subprocess reaching the emulator (~15-30 s)."""
    target = TARGETS[2]
    artifact = package.build_artifact(tmp_path)
    plan = features.plan_features(validated, [target], feature_set="flights_v1_submit",
                                  job_version=package.artifact_version(artifact), bucket=BUCKET, build=BUILD)
    plan_uri = put_plan(s3, plan, "submit")

    features.run_local(plan_uri, artifact=artifact, env=emulator_env)

    manifest = lake.read_json(s3, BUCKET, staged_prefix(target, "flights_v1_submit") + "_manifest.json")
    assert not lake.exists(s3, BUCKET, catalog.features_partition("flights_v1_submit", target) + "_SUCCESS")
    assert manifest["rows"] == len(nycflights.day("flights", target))
    assert manifest["job_version"] == package.artifact_version(artifact)


@pytest.fixture(scope="module")
def spark_connect_server(tmp_path_factory, emulator_env):
    """The local stack's Spark Connect server (its own command line), on a free port."""
    import socket
    import subprocess

    from contrail.settings import load_settings
    from contrail.stack import local

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state = tmp_path_factory.mktemp("connect-state")
    settings = load_settings({"CONTRAIL_SPARK_CONNECT_PORT": str(port), "CONTRAIL_STATE_DIR": str(state)})
    (component,) = [c for c in local.components(settings) if c.name == "spark-connect"]
    local.paths(settings)["spark_connect"].mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(component.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not component.ready():
            assert proc.poll() is None and time.monotonic() < deadline, "the Spark Connect server did not start"
            time.sleep(0.5)
        yield settings.spark_remote
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_run_on_connect_builds_what_spark_submit_builds(spark, s3, validated, first_run, spark_connect_server,
                                                       monkeypatch):
    """The stack's path: the job's plans on a warm Spark Connect server, staging through this
    machine's disk; the same rows, columns and manifest as the job in its own session."""
    # a Connect session marks its process as Connect-only (a task process ends with its task);
    # this one goes on with local sessions, so the mark is taken back at the end of the test
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    plan = features.plan_features(validated, TARGETS, feature_set="flights_v1_connect", job_version="test0001",
                                  bucket=BUCKET, build=BUILD)
    counts = features.run_on_connect(put_plan(s3, plan, "connect"), remote=spark_connect_server, s3=s3)

    assert counts == first_run[1]
    for d in TARGETS:
        prefix = staged_prefix(d, "flights_v1_connect")
        manifest = lake.read_json(s3, BUCKET, prefix + "_manifest.json")
        reference = lake.read_json(s3, BUCKET, staged_prefix(d) + "_manifest.json")
        assert manifest["feature_set"] == "flights_v1_connect"
        assert {k: v for k, v in manifest.items() if k not in ("parts", "feature_set")} == \
            {k: v for k, v in reference.items() if k not in ("parts", "feature_set")}
        got = pd.read_parquet(io.BytesIO(lake.read_bytes(s3, BUCKET, manifest["parts"][0])))
        pd.testing.assert_frame_equal(got, read_partition(s3, d))


def test_artifact_is_deterministic(tmp_path):
    first = package.build_artifact(tmp_path / "a")
    second = package.build_artifact(tmp_path / "b")
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()
    assert first.name.startswith("contrail_spark-") and len(package.artifact_version(first)) == 12


def test_upload_artifact_skips_when_present(s3, tmp_path):
    path = package.build_artifact(tmp_path)
    key = catalog.spark_artifact_key(path.name)
    uri = package.upload_artifact(s3, BUCKET, path, key)
    assert uri == f"s3://{BUCKET}/artifacts/spark/{path.name}"
    s3.put_object(Bucket=BUCKET, Key=f"artifacts/spark/{path.name}", Body=b"already there")
    assert package.upload_artifact(s3, BUCKET, path, key) == uri
    assert lake.read_bytes(s3, BUCKET, f"artifacts/spark/{path.name}") == b"already there"
