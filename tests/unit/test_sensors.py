"""The drop sensor's timeout names the dataset, the partition and the key it waited for."""

from __future__ import annotations

import pytest


def test_deferred_wait_timeout_names_dataset_partition_and_key():
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from contrail.sensors import DropSensor

    sensor = DropSensor(task_id="wait_for_drop", dataset="flights", bucket_name="lake",
                        drop_prefix="incoming/flights/2013-01-04/", timeout=60)
    assert sensor.deferrable and sensor.wildcard_match
    with pytest.raises(AirflowSensorTimeout) as exc:
        sensor.resume_execution(TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT},
                                {"ds": "2013-01-04"})
    message = str(exc.value)
    assert "flights" in message and "dt=2013-01-04" in message
    assert "s3://lake/incoming/flights/2013-01-04/" in message and "60 s" in message


KEYS_SEEN = ["incoming/flights/2013-01-04/flights.csv.gz", "incoming/flights/2013-01-04/flights.CSV.GZ",
             "incoming/flights/2013-01-04/flights.csv", "incoming/flights/2013-01-04/part=1/p-0.csv.gz"]
KEYS_NOT_SEEN = ["incoming/flights/2013-01-04/_SUCCESS", "incoming/flights/2013-01-04/.flights.csv.gz.tmp",
                 "incoming/flights/2013-01-04/part=1/", "incoming/flights/2013-01-05/flights.csv.gz"]


def _sensor():
    from contrail.sensors import DropSensor

    return DropSensor(task_id="wait_for_drop", dataset="flights", bucket_name="lake",
                      drop_prefix="incoming/flights/2013-01-04/", timeout=60)


@pytest.mark.parametrize("key", KEYS_SEEN)
def test_any_data_name_wakes_the_sensor_so_landing_can_judge_it(key: str) -> None:
    import fnmatch

    # fnmatch is what both the poke and the deferred trigger match keys with
    assert fnmatch.fnmatchcase(key, _sensor().bucket_key)


@pytest.mark.parametrize("key", KEYS_NOT_SEEN)
def test_markers_and_folder_keys_do_not_wake_the_sensor(key: str) -> None:
    import fnmatch

    assert not fnmatch.fnmatchcase(key, _sensor().bucket_key)


def test_poke_sees_a_wrong_case_drop_and_not_a_lone_marker(moto_s3) -> None:
    moto_s3.create_bucket(Bucket="lake")
    sensor = _sensor()
    moto_s3.put_object(Bucket="lake", Key="incoming/flights/2013-01-04/_SUCCESS", Body=b"")
    assert not sensor.poke({})
    moto_s3.put_object(Bucket="lake", Key="incoming/flights/2013-01-04/flights.CSV.GZ", Body=b"x")
    assert sensor.poke({})


def test_drop_prefix_must_be_a_folder() -> None:
    from contrail.sensors import DropSensor

    with pytest.raises(ValueError, match="must end in '/'"):
        DropSensor(task_id="w", dataset="flights", bucket_name="lake", drop_prefix="incoming/flights/x")


def _landing_sensor(monkeypatch):
    from contrail import sensors

    landed = []
    monkeypatch.setattr("contrail.stages.landing.land_task",
                        lambda dataset, context, s3=None: landed.append((dataset, context["ds"])) or {"dt": context["ds"]})
    sensor = sensors.DropLandingSensor(task_id="land", dataset="flights", bucket_name="lake",
                                       drop_prefix="incoming/flights/2013-01-04/", timeout=60)
    return sensor, landed


def test_a_drop_already_there_is_landed_in_the_same_task_instance(moto_s3, monkeypatch) -> None:
    moto_s3.create_bucket(Bucket="lake")
    moto_s3.put_object(Bucket="lake", Key="incoming/flights/2013-01-04/flights.csv.gz", Body=b"x")
    sensor, landed = _landing_sensor(monkeypatch)
    assert sensor.execute({"ds": "2013-01-04"}) == {"dt": "2013-01-04"}
    assert landed == [("flights", "2013-01-04")]
    assert not sensor.do_xcom_push  # what was landed travels in the asset event


def test_a_missing_drop_defers_and_is_landed_when_the_trigger_fires(moto_s3, monkeypatch) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    moto_s3.create_bucket(Bucket="lake")
    sensor, landed = _landing_sensor(monkeypatch)
    with pytest.raises(TaskDeferred):
        sensor.execute({"ds": "2013-01-04"})
    assert landed == []
    assert sensor.execute_complete({"ds": "2013-01-04"}, {"status": "success"}) == {"dt": "2013-01-04"}
    assert landed == [("flights", "2013-01-04")]


def test_a_trigger_error_lands_nothing(monkeypatch) -> None:
    sensor, landed = _landing_sensor(monkeypatch)
    with pytest.raises(Exception, match="listing failed"):
        sensor.execute_complete({"ds": "2013-01-04"}, {"status": "error", "message": "listing failed"})
    assert landed == []


def test_the_lake_hooks_name_their_caller_as_the_provider_does_from_frame_names_alone() -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from contrail.aws_hooks import LakeAwsHook, LakeS3Hook

    hook = LakeS3Hook(aws_conn_id=None)

    class LandOperator:
        def execute(self):
            return hook._get_caller(), S3Hook._get_caller(hook)

    class BaseSensorOperator:  # the provider's rule: a base sensor's execute → whoever pokes
        def execute(self):
            return Poker().poke()

    class Poker:
        def poke(self):
            return hook._get_caller(), S3Hook._get_caller(hook)

    assert LandOperator().execute() == ("LandOperator", "LandOperator")
    assert BaseSensorOperator().execute() == ("Poker", "Poker")
    assert LakeAwsHook(aws_conn_id=None, client_type="dynamodb")._get_caller("no_such_method") == "Unknown"


def test_the_landing_sensors_client_names_the_sensor_in_its_user_agent(moto_s3, monkeypatch) -> None:
    from contrail.aws_hooks import LakeS3Hook

    moto_s3.create_bucket(Bucket="lake")
    moto_s3.put_object(Bucket="lake", Key="incoming/flights/2013-01-04/flights.csv.gz", Body=b"x")
    sensor, landed = _landing_sensor(monkeypatch)
    sensor.execute({"ds": "2013-01-04"})
    assert isinstance(sensor.hook, LakeS3Hook)
    assert "Caller/DropLandingSensor" in sensor.hook.conn.meta.config.user_agent_extra


def test_a_client_on_the_warmed_shared_loader_parses_no_model_again(monkeypatch) -> None:
    import boto3
    import botocore.loaders

    from contrail.aws_hooks import share_loader, warm

    warm()
    parsed = []
    load_file = botocore.loaders.JSONFileLoader.load_file
    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file",
                        lambda self, path: parsed.append(path) or load_file(self, path))

    def session():
        return boto3.session.Session(region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")

    share_loader(session()).client("s3", endpoint_url="http://127.0.0.1:9")
    assert parsed == []
    session().client("s3", endpoint_url="http://127.0.0.1:9")  # a session of its own parses them all
    assert any("s3" in str(p) for p in parsed)
