"""Create what the lake needs before anything runs: the bucket, its tiers, the stream queue,
the ``stream/`` -> SQS notification and the Firehose delivery stream. Idempotent, and the
same code runs against the emulator and against a real account (``contrail bootstrap``).
"""

from __future__ import annotations

import json
import logging

from contrail import lake
from contrail.settings import Settings

log = logging.getLogger(__name__)


def ensure_bucket(s3, settings: Settings) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=settings.bucket)
        return
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs = {}
    if settings.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
    s3.create_bucket(Bucket=settings.bucket, **kwargs)
    log.info("created bucket %s", settings.bucket)


def ensure_stream_queue(sqs, settings: Settings) -> tuple[str, str]:
    """The SQS queue that receives object-created events for ``stream/``; returns (url, arn)."""
    url = sqs.create_queue(QueueName=settings.stream_queue,
                           Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": arn,
            "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{settings.bucket}"}},
        }],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return url, arn


def ensure_stream_notifications(s3, settings: Settings, queue_arn: str) -> None:
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket,
        NotificationConfiguration={"QueueConfigurations": [{
            "Id": "stream-object-created",
            "QueueArn": queue_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "stream/"}]}},
        }]},
    )


def bootstrap(settings: Settings) -> dict[str, str]:
    """Create or update every lake resource; returns their identifiers."""
    from contrail.lifecycle import apply_lifecycle
    from contrail.simulate import ensure_delivery_stream

    s3 = lake.client("s3", settings)
    ensure_bucket(s3, settings)
    apply_lifecycle(s3, settings.bucket)
    queue_url, queue_arn = ensure_stream_queue(lake.client("sqs", settings), settings)
    ensure_stream_notifications(s3, settings, queue_arn)
    ensure_delivery_stream(
        lake.client("firehose", settings), settings.firehose_stream,
        bucket_arn=f"arn:aws:s3:::{settings.bucket}",
        role_arn=f"arn:aws:iam::123456789012:role/{settings.bucket}-firehose",
    )
    return {"bucket": settings.bucket, "stream_queue_url": queue_url,
            "firehose_stream": settings.firehose_stream}
