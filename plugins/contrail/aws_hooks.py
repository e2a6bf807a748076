"""The Amazon provider's hooks, naming their caller without reading every frame's source.

Every boto3 client a provider hook makes carries a user agent naming the operator or sensor
that asked for it (``Caller/<class>``). The provider finds that class with ``inspect.stack()``,
which, for every frame of the stack, looks up its module (a scan of ``sys.modules``) and reads
its source lines. A task process with the task code preloaded holds thousands of modules and
some fifty frames, so that one lookup cost more than the landing it served: sampled through a
month's catch-up, it was a third of all the time the task processes spent. These hooks give the
same user agent from the frames' own names (``sys._getframe``), which costs microseconds.
"""

from __future__ import annotations

import sys
from types import FrameType

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook


def calling_class(function: str, frame: FrameType | None = None) -> str | None:
    """The class of ``self`` in the innermost frame running a method named ``function``."""
    frame = frame or sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == function and "self" in frame.f_locals:
            return type(frame.f_locals["self"]).__name__
        frame = frame.f_back
    return None


def executor_class(frame: FrameType | None = None) -> str | None:
    """The class of the innermost ``self`` that is an Airflow executor (a hook made by one)."""
    frame = frame or sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if owner is not None and any(c.__name__ == "BaseExecutor" for c in type(owner).__mro__):
            return type(owner).__name__
        frame = frame.f_back
    return None


class FrameCaller:
    """Mixin: the provider's ``_get_caller`` rule (the operator whose ``execute`` runs, or for
    a sensor the class whose ``poke`` runs, else an executor), read from frame names."""

    def _get_caller(self, target_function_name: str = "execute") -> str:
        frame = sys._getframe(1)
        caller = calling_class(target_function_name, frame)
        if caller == "BaseSensorOperator":
            caller = calling_class("poke", frame)
        return caller or executor_class(frame) or "Unknown"


class LakeS3Hook(FrameCaller, S3Hook):
    """:class:`S3Hook` for the lake: the drop sensors' and the tasks' S3 client."""


class LakeAwsHook(FrameCaller, AwsBaseHook):
    """:class:`AwsBaseHook` for the other services (DynamoDB, Kinesis) and for credentials."""
