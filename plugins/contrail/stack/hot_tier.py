"""The hot tier's resources for ``contrail bootstrap``: the online store's DynamoDB table and the
Kinesis Data Stream of flight events. Create (locally, or on an account whose stack lacks them)
and check; :mod:`contrail.stack.bootstrap` calls these beside its own."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from contrail import lake, online_store
from contrail.settings import Settings

KINESIS_SHARDS = 1  # the replay puts a few events a second; one shard takes 1,000


def ensure_kinesis_stream(kinesis, name: str, shards: int = KINESIS_SHARDS) -> None:
    """Create the stream if absent and wait until it is ACTIVE; idempotent."""
    try:
        kinesis.describe_stream_summary(StreamName=name)
    except kinesis.exceptions.ResourceNotFoundException:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def check_kinesis_stream(kinesis, name: str) -> Iterable[str]:
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    if summary["StreamStatus"] != "ACTIVE":
        yield f"Kinesis {name}: {summary['StreamStatus']}, not ACTIVE"


def ensure(settings: Settings, outputs: Mapping[str, str] | None = None) -> dict[str, str]:
    """Make sure the table and the stream exist (the stack's names on AWS); returns their names."""
    names = names_of(settings, outputs)
    online_store.ensure_table(lake.client("dynamodb", settings), names["OnlineTableName"])
    ensure_kinesis_stream(lake.client("kinesis", settings), names["KinesisStreamName"])
    return names


def names_of(settings: Settings, outputs: Mapping[str, str] | None = None) -> dict[str, str]:
    outputs = outputs or {}
    return {"OnlineTableName": outputs.get("OnlineTableName", settings.online_table),
            "KinesisStreamName": outputs.get("KinesisStreamName", settings.kinesis_stream)}


def check(settings: Settings, outputs: Mapping[str, str] | None, problems_of) -> list[str]:
    """Every problem with the table and the stream (``problems_of`` turns API errors into lines)."""
    names = names_of(settings, outputs)
    problems: list[str] = []
    if names["OnlineTableName"] != settings.online_table:
        problems.append(f"the stack's table {names['OnlineTableName']} is not {settings.online_table}")
    if names["KinesisStreamName"] != settings.kinesis_stream:
        problems.append(f"the stack's stream {names['KinesisStreamName']} is not {settings.kinesis_stream}")
    problems += problems_of("online store", lambda: online_store.check_table(
        lake.client("dynamodb", settings), names["OnlineTableName"]))
    problems += problems_of("kinesis", lambda: check_kinesis_stream(
        lake.client("kinesis", settings), names["KinesisStreamName"]))
    return problems


def worker_permissions(outputs: Mapping[str, str], *, region: str, account: str,
                       partition: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What the workers' policy must and must not allow on the hot tier (pure)."""
    table = f"arn:{partition}:dynamodb:{region}:{account}:table/{outputs['OnlineTableName']}"
    stream = f"arn:{partition}:kinesis:{region}:{account}:stream/{outputs['KinesisStreamName']}"
    must: list[tuple[str, Any]] = [
        *((a, table) for a in ("dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem",
                               "dynamodb:PutItem", "dynamodb:Query", "dynamodb:DescribeTable")),
        *((a, stream) for a in ("kinesis:PutRecords", "kinesis:ListShards", "kinesis:GetShardIterator",
                                "kinesis:GetRecords", "kinesis:DescribeStreamSummary")),
    ]
    must_not = [("dynamodb:DeleteTable", table), ("dynamodb:Scan", table),
                ("dynamodb:GetItem", f"arn:{partition}:dynamodb:{region}:{account}:table/other"),
                ("kinesis:DeleteStream", stream),
                ("kinesis:GetRecords", f"arn:{partition}:kinesis:{region}:{account}:stream/other")]
    return must, must_not
