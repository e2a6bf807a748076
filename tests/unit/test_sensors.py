"""The drop sensor's timeout names the dataset, the partition and the key it waited for."""

from __future__ import annotations

import pytest


def test_deferred_wait_timeout_names_dataset_partition_and_key():
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from contrail.sensors import DropSensor

    sensor = DropSensor(task_id="wait_for_drop", dataset="flights", bucket_name="lake",
                        bucket_key="incoming/flights/2013-01-04/*.csv.gz", timeout=60)
    assert sensor.deferrable and sensor.wildcard_match
    with pytest.raises(AirflowSensorTimeout) as exc:
        sensor.resume_execution(TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT},
                                {"ds": "2013-01-04"})
    message = str(exc.value)
    assert "flights" in message and "dt=2013-01-04" in message
    assert "s3://lake/incoming/flights/2013-01-04/*.csv.gz" in message and "60 s" in message
