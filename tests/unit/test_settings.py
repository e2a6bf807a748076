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
])
def test_bad_values_name_the_variable(environ, message):
    with pytest.raises(ValueError, match=message):
        load_settings(environ)


def test_draining_can_be_turned_off():
    assert load_settings({"CONTRAIL_STREAM_DRAIN_IDLE_S": "0"}).stream_drain_idle_s == 0.0
