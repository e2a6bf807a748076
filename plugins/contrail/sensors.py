"""Sensors of the pipeline's own: waiting for upstream's drop with an error a person can act on."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk.exceptions import AirflowSensorTimeout


class DropSensor(S3KeySensor):
    """An ``S3KeySensor`` for upstream drops whose timeout names the dataset, partition and key.

    Deferrable by default: the wait runs in the triggerer, not in a worker slot.

    :param dataset: the dataset whose drop is awaited (for the error message)
    """

    def __init__(self, *, dataset: str, **kwargs: Any) -> None:
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("wildcard_match", True)
        super().__init__(**kwargs)
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
