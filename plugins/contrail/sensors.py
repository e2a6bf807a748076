"""Sensors of the pipeline's own: waiting for upstream's drop with an error a person can act on."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk.exceptions import AirflowSensorTimeout

from contrail.aws_hooks import LakeS3Hook

# Any object below the drop prefix whose name does not start with "_" or "." and that is not
# a "…/" folder key: landing judges the names (a ``.CSV.GZ`` or ``.csv`` drop must reach it
# and fail at once with ``not_csv_gz``, not wait out the timeout), and ignores the markers
# (``_SUCCESS``) this pattern does not wake up for. fnmatch syntax: the sensor and its
# trigger match keys with ``fnmatch``.
DROP_OBJECT_PATTERN = "[!_.]*[!/]"


class DropSensor(S3KeySensor):
    """An ``S3KeySensor`` for upstream drops whose timeout names the dataset, partition and key.

    Waits for any data object under ``drop_prefix`` (see :data:`DROP_OBJECT_PATTERN`).
    Deferrable by default: the wait runs in the triggerer, not in a worker slot.

    :param dataset: the dataset whose drop is awaited (for the error message)
    :param drop_prefix: the drop's prefix, e.g. ``incoming/flights/{{ ds }}/`` (templated)
    """

    # the provider's S3Hook, minus the cost of naming this sensor in the client's user agent
    aws_hook_class = LakeS3Hook

    def __init__(self, *, dataset: str, drop_prefix: str, **kwargs: Any) -> None:
        if not drop_prefix.endswith("/"):
            raise ValueError(f"drop_prefix must end in '/': {drop_prefix!r}")
        kwargs.setdefault("deferrable", True)
        super().__init__(bucket_key=drop_prefix + DROP_OBJECT_PATTERN, wildcard_match=True, **kwargs)
        self.dataset = dataset

    def timeout_message(self, context: Any) -> str:
        return (f"no {self.dataset} drop for dt={context.get('ds')} under "
                f"s3://{self.bucket_name}/{self.bucket_key} after {self.timeout:.0f} s: upstream has not "
                "delivered; re-run this task once the file is there (or backfill the date)")

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any):
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(self.timeout_message(context)) from exc

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(self.timeout_message(context)) from exc


class DropLandingSensor(DropSensor):
    """Waits for the drop of its data interval, then lands it, as one task instance.

    A catch-up or backfill finds its drops already there: the first poke succeeds and the drop
    is landed in the same process, so a landed day costs one task instance (one process start,
    one DAG parse) instead of a sensor's plus a landing task's. A drop not there yet is awaited
    in the triggerer as by :class:`DropSensor` and landed when the task resumes.

    Sets the ``landing_<dataset>`` asset event's extra (declare the asset in ``outlets``) and
    returns it. A bad drop fails the task without retries, naming the key and the rule.
    """

    def __init__(self, **kwargs: Any) -> None:
        # what was landed travels in the asset event; an XCom would be one more API round trip
        kwargs.setdefault("do_xcom_push", False)
        super().__init__(**kwargs)

    def execute(self, context: Any) -> Any:
        if not self.poke(context=context):
            super().execute(context)  # defers (resumes in execute_complete), or pokes until found
        return self._land(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        super().execute_complete(context, event)  # raises on a trigger error; may defer again
        return self._land(context)

    def _land(self, context: Any) -> dict:
        from contrail.stages.landing import land_task

        # the client the poke used: one connection lookup and one boto3 client per task
        return land_task(self.dataset, context, s3=self.hook.conn)
