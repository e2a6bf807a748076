"""The scale-out stack's wiring, without starting it: its components, their environment and
the PostgreSQL database names it creates (against the machine's loopback PostgreSQL)."""

from __future__ import annotations

import pytest

from contrail.settings import load_settings
from contrail.stack import local, scaleout

SCALEOUT = {"CONTRAIL_PROFILE": "scaleout", "CONTRAIL_STATE_DIR": "/tmp/contrail-unit-scaleout",
            "CONTRAIL_REDIS_DB": "9"}


def test_two_workers_only_the_first_serves_the_spark_queue():
    settings = load_settings(SCALEOUT)
    by_name = {c.name: c for c in local.components(settings)}
    one, two = by_name["celery-worker-1"], by_name["celery-worker-2"]
    assert one.argv[one.argv.index("--queues") + 1] == "default,spark"
    assert two.argv[two.argv.index("--queues") + 1] == "default"
    hostnames = {c.argv[c.argv.index("--celery-hostname") + 1].split("@")[0] for c in (one, two)}
    assert hostnames == {"celery-worker-1", "celery-worker-2"}
    # no log server: nothing listens on a worker's behalf
    assert "--skip-serve-logs" in one.argv and "--skip-serve-logs" in two.argv
    assert one.env[scaleout.WORKER_HOSTNAME_ENV] == "celery-worker-1"


def test_the_embedded_profile_has_no_workers_and_stays_on_sqlite():
    settings = load_settings({"CONTRAIL_STATE_DIR": "/tmp/contrail-unit-embedded"})
    names = [c.name for c in local.components(settings)]
    assert not [n for n in names if n.startswith("celery")]
    env = local.stack_env(settings, base={})
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")


def test_scaleout_environment_is_celery_on_postgres():
    settings = load_settings(SCALEOUT)
    env = local.stack_env(settings, base={})
    so = settings.scaleout
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == so.airflow_db_url
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/9"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{so.airflow_db_url}"
    assert env["CONTRAIL_PROFILE"] == "scaleout"
    mlflow = next(c for c in local.components(settings) if c.name == "mlflow")
    assert mlflow.argv[mlflow.argv.index("--backend-store-uri") + 1] == so.mlflow_backend_uri
    # a task reading its settings back gets the same profile and queue
    assert load_settings(env).spark_queue == "spark" and load_settings(env).scaleout == so


def test_database_urls_split_into_name_and_server():
    name, admin = scaleout._split("postgresql+psycopg2://postgres@127.0.0.1:5432/contrail_x_airflow")
    assert (name, admin) == ("contrail_x_airflow", "postgresql://postgres@127.0.0.1:5432/postgres")
    with pytest.raises(ValueError, match="postgresql URL"):
        scaleout._split("sqlite:////tmp/airflow.db")


def test_databases_are_created_once_and_dropped(tmp_path):
    import psycopg2
    settings = load_settings({**SCALEOUT, "CONTRAIL_STATE_DIR": str(tmp_path)})
    try:
        first = scaleout.ensure_databases(settings)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"the scale-out profile needs PostgreSQL on 127.0.0.1:5432: {exc}")
    try:
        assert sorted(first) == sorted(scaleout._split(u)[0] for u in scaleout.database_urls(settings))
        assert scaleout.ensure_databases(settings) == []
    finally:
        scaleout.drop_databases(settings)
    assert sorted(scaleout.ensure_databases(settings)) == sorted(first)
    scaleout.drop_databases(settings)


def test_reset_flushes_the_profiles_redis_db_and_no_other(tmp_path):
    """A reset leaves no Celery message for the next stack, in the profile's Redis database
    only. db 15 here: the end-to-end stacks take 14 down to 9 (one per port offset), and a test
    must never flush a running stack's queue; a key in db 14 stands for another stack's and
    survives."""
    import redis

    settings = load_settings({**SCALEOUT, "CONTRAIL_STATE_DIR": str(tmp_path), "CONTRAIL_REDIS_DB": "15"})
    assert settings.scaleout.celery_broker_url == "redis://127.0.0.1:6379/15"
    ours, other = redis.Redis(host="127.0.0.1", port=6379, db=15), redis.Redis(host="127.0.0.1", port=6379, db=14)
    try:
        ours.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"the scale-out profile needs Redis on 127.0.0.1:6379: {exc}")
    marker = f"contrail-unit-{tmp_path.name}"
    try:
        ours.lpush("default", b'{"stale": "task message"}')
        ours.set("unacked_index", b"1")
        other.set(marker, b"another stack's")
        local.reset(settings)
        assert ours.dbsize() == 0
        assert other.get(marker) == b"another stack's"
        assert not tmp_path.exists()
    finally:
        other.delete(marker)
        ours.close()
        other.close()


def test_a_broker_that_is_not_redis_is_left_alone():
    settings = load_settings({**SCALEOUT, "AIRFLOW__CELERY__BROKER_URL": "sqs://"})
    assert scaleout.flush_broker(settings) is False
