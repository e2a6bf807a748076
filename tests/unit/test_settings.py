"""The one switch: what CONTRAIL_ENV and its companions resolve to."""

from __future__ import annotations

import pytest

from contrail.settings import load_settings


def test_local_defaults_point_at_the_embedded_stack():
    cfg = load_settings({})
    assert (cfg.env, cfg.spark_runner, cfg.bucket) == ("local", "local", "contrail-lake")
    assert (cfg.ports.airflow, cfg.ports.mlflow, cfg.ports.emulator, cfg.ports.spark_connect) == (
        8080, 5000, 4566, 15002)
    assert cfg.emulator_url == "http://127.0.0.1:4566"
    assert cfg.spark_remote == "sc://127.0.0.1:15002"
    assert cfg.stream_drain_idle_s == 20.0


def test_ports_move_together_with_the_spark_connect_endpoint():
    cfg = load_settings({"CONTRAIL_SPARK_CONNECT_PORT": "25002", "CONTRAIL_AIRFLOW_PORT": "18080"})
    assert cfg.spark_remote == "sc://127.0.0.1:25002" and cfg.airflow_url == "http://127.0.0.1:18080"


def test_aws_has_no_emulator_and_spark_remote_only_when_configured():
    cfg = load_settings({"CONTRAIL_ENV": "aws"})
    assert (cfg.emulator_url, cfg.spark_runner, cfg.spark_remote) == (None, "emr", None)
    remote = load_settings({"CONTRAIL_ENV": "aws", "CONTRAIL_SPARK_REMOTE": "sc://emr-primary:15002"})
    assert remote.spark_remote == "sc://emr-primary:15002"


@pytest.mark.parametrize("environ, message", [
    ({"CONTRAIL_ENV": "prod"}, "CONTRAIL_ENV must be 'local' or 'aws'"),
    ({"CONTRAIL_SPARK_RUNNER": "yarn"}, "CONTRAIL_SPARK_RUNNER must be"),
    ({"CONTRAIL_SPARK_CONNECT_PORT": "x"}, "CONTRAIL_SPARK_CONNECT_PORT must be an integer port"),
    ({"CONTRAIL_STREAM_DRAIN_IDLE_S": "soon"}, "CONTRAIL_STREAM_DRAIN_IDLE_S must be a number"),
    ({"CONTRAIL_STREAM_DRAIN_IDLE_S": "-1"}, "must be >= 0"),
    ({"CONTRAIL_STREAM_SOURCE": "kafka"}, "CONTRAIL_STREAM_SOURCE must be 'firehose' or 'kinesis'"),
    ({"CONTRAIL_ONLINE_TTL_DAYS": "long"}, "CONTRAIL_ONLINE_TTL_DAYS must be a number of days"),
])
def test_bad_values_name_the_variable(environ, message):
    with pytest.raises(ValueError, match=message):
        load_settings(environ)


def test_the_hot_tier_is_named_after_the_bucket_and_firehose_is_the_default_source():
    cfg = load_settings({"CONTRAIL_BUCKET": "lake-x"})
    assert (cfg.online_table, cfg.kinesis_stream, cfg.stream_source) == (
        "lake-x-online-features", "lake-x-flight-events-live", "firehose")
    assert load_settings({"CONTRAIL_STREAM_SOURCE": "kinesis"}).stream_source == "kinesis"


def test_draining_can_be_turned_off():
    assert load_settings({"CONTRAIL_STREAM_DRAIN_IDLE_S": "0"}).stream_drain_idle_s == 0.0


def test_embedded_is_the_default_profile_and_routes_nothing():
    cfg = load_settings({})
    assert (cfg.profile, cfg.scaleout, cfg.spark_queue) == ("embedded", None, "default")


def test_scaleout_databases_are_per_state_dir_on_loopback():
    a = load_settings({"CONTRAIL_PROFILE": "scaleout", "CONTRAIL_STATE_DIR": "/tmp/stack-a"})
    b = load_settings({"CONTRAIL_PROFILE": "scaleout", "CONTRAIL_STATE_DIR": "/tmp/stack-b"})
    assert a.scaleout.airflow_db_url.startswith("postgresql+psycopg2://postgres@127.0.0.1:5432/contrail_")
    assert a.scaleout.airflow_db_url.endswith("_airflow") and a.scaleout.mlflow_backend_uri.endswith("_mlflow")
    assert a.scaleout.airflow_db_url != b.scaleout.airflow_db_url
    assert a.scaleout.mlflow_backend_uri != b.scaleout.mlflow_backend_uri
    assert a.scaleout.celery_broker_url == "redis://127.0.0.1:6379/0"
    assert a.scaleout.celery_result_backend == f"db+{a.scaleout.airflow_db_url}"
    assert a.spark_queue == "spark"


def test_scaleout_urls_come_from_the_names_airflow_reads():
    cfg = load_settings({
        "CONTRAIL_PROFILE": "scaleout",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow@db:5432/airflow",
        "AIRFLOW__CELERY__BROKER_URL": "redis://broker:6379/3",
        "CONTRAIL_MLFLOW_BACKEND_URI": "postgresql+psycopg2://mlflow@db:5432/mlflow",
        "CONTRAIL_TASK_HEARTBEAT_TIMEOUT_S": "30",
    })
    so = cfg.scaleout
    assert so.airflow_db_url == "postgresql+psycopg2://airflow@db:5432/airflow"
    assert so.celery_result_backend == "db+postgresql+psycopg2://airflow@db:5432/airflow"
    assert so.celery_broker_url == "redis://broker:6379/3"
    assert so.mlflow_backend_uri == "postgresql+psycopg2://mlflow@db:5432/mlflow"
    assert cfg.task_heartbeat_timeout_s == 30


def test_redis_db_picks_the_broker_database():
    cfg = load_settings({"CONTRAIL_PROFILE": "scaleout", "CONTRAIL_REDIS_DB": "14"})
    assert cfg.scaleout.celery_broker_url == "redis://127.0.0.1:6379/14"


@pytest.mark.parametrize("environ, message", [
    ({"CONTRAIL_PROFILE": "cluster"}, "CONTRAIL_PROFILE must be 'embedded' or 'scaleout'"),
    ({"CONTRAIL_PROFILE": "scaleout", "CONTRAIL_REDIS_DB": "one"}, "CONTRAIL_REDIS_DB must be a Redis database number"),
])
def test_bad_profile_values_name_the_variable(environ, message):
    with pytest.raises(ValueError, match=message):
        load_settings(environ)
