"""The Amazon provider's hooks, naming their caller without reading every frame's source.

Every boto3 client a provider hook makes carries a user agent naming the operator or sensor
that asked for it (``Caller/<class>``). The provider finds that class with ``inspect.stack()``,
which, for every frame of the stack, looks up its module (a scan of ``sys.modules``) and reads
its source lines. A task process with the task code preloaded holds thousands of modules and
some fifty frames, so that one lookup cost more than the landing it served: sampled through a
month's catch-up, it was a third of all the time the task processes spent. These hooks give the
same user agent from the frames' own names (``sys._getframe``), which costs microseconds.

They also share one botocore data loader per process: each new boto3 session otherwise parses
the service model, the endpoints and the endpoint rule set from JSON again for its first
client. The stack's preload warms it (:func:`warm`) before any task process is forked, so a
task's client costs a quarter of what it did.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from types import FrameType

import boto3
import botocore.loaders
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


# what the pipeline's tasks make clients of
WARM_SERVICES = ("s3", "dynamodb", "kinesis", "firehose")


@lru_cache(maxsize=1)
def shared_loader() -> botocore.loaders.Loader:
    """The process's one botocore data loader (it caches what it parses; only ever read)."""
    return botocore.loaders.create_loader()


def share_loader(session: boto3.session.Session) -> boto3.session.Session:
    session._session.register_component("data_loader", shared_loader())
    return session


def warm(services: tuple[str, ...] = WARM_SERVICES) -> None:
    """Parse the models a client of each of ``services`` needs, into :func:`shared_loader`
    (no network: a client is only configured)."""
    session = share_loader(boto3.session.Session(region_name="us-east-1", aws_access_key_id="warm",
                                                 aws_secret_access_key="warm"))
    for service in services:
        session.client(service, endpoint_url="http://127.0.0.1:9")


class LakeHook:
    """Mixin for the provider's hooks: the provider's ``_get_caller`` rule (the operator whose
    ``execute`` runs, or for a sensor the class whose ``poke`` runs, else an executor), read
    from frame names; sessions on the shared loader."""

    def get_session(self, region_name: str | None = None, deferrable: bool = False):
        session = super().get_session(region_name=region_name, deferrable=deferrable)
        return share_loader(session) if isinstance(session, boto3.session.Session) else session

    def _get_caller(self, target_function_name: str = "execute") -> str:
        frame = sys._getframe(1)
        caller = calling_class(target_function_name, frame)
        if caller == "BaseSensorOperator":
            caller = calling_class("poke", frame)
        return caller or executor_class(frame) or "Unknown"


class LakeS3Hook(LakeHook, S3Hook):
    """:class:`S3Hook` for the lake: the drop sensors' and the tasks' S3 client."""


class LakeAwsHook(LakeHook, AwsBaseHook):
    """:class:`AwsBaseHook` for the other services (DynamoDB, Kinesis) and for credentials."""
