"""Create (locally) or find (on AWS) what the lake needs before anything runs, and check it.

Local (``CONTRAIL_ENV=local``): create the bucket, its tiers, the stream queue, the ``stream/``
-> SQS notification, the Firehose delivery stream, the online store's table and the Kinesis
stream (:mod:`contrail.stack.hot_tier`) on the emulator. Idempotent.

AWS: the resources are the CloudFormation stack ``settings.stack_name`` (``deploy/contrail.yaml``);
:func:`bootstrap` reads its outputs (queue URL, role ARNs, application id) with DescribeStacks,
makes sure the Firehose stream and the EMR Serverless application exist (the stack creates them;
an account or emulator without them gets them through their own APIs, as locally), and returns
the identifiers the workers need (:func:`worker_environment`).

:func:`check` (``contrail bootstrap --check``) creates nothing: it reads every resource the DAGs
name and reports what is missing or differs from what the code expects, down to the policies.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from typing import Any, Iterable, Mapping

from contrail import catalog, lake
from contrail.settings import Settings
from contrail.stack import hot_tier

log = logging.getLogger(__name__)

# The stack outputs the code reads (deploy/contrail.yaml ``Outputs``).
STACK_OUTPUTS: tuple[str, ...] = (
    "BucketName", "QueueUrl", "QueueArn", "DeadLetterQueueUrl", "FirehoseStreamName", "FirehoseRoleArn",
    "EmrServiceRoleArn", "EmrInstanceProfile", "EmrSecurityConfiguration", "EmrServerlessApplicationId",
    "EmrServerlessJobRoleArn", "WorkerPolicyArn", "WorkerRoleArn", "OnlineTableName", "KinesisStreamName",
)
SERVERLESS_APPLICATION_NAME = "contrail-features"
NOTIFICATION_ID = "stream-object-created"


class BootstrapError(RuntimeError):
    """The stack is missing, incomplete, or its resources differ from what the code expects."""


# --------------------------------------------------------------------------- local: create

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


def queue_policy(queue_arn: str, bucket: str) -> dict[str, Any]:
    """The stream queue's policy: S3 may send the lake bucket's notifications (pure)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": queue_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
        }],
    }


def notification_configuration(queue_arn: str) -> dict[str, Any]:
    """``stream/`` object-created events to the stream queue (pure)."""
    return {"QueueConfigurations": [{
        "Id": NOTIFICATION_ID,
        "QueueArn": queue_arn,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": catalog.STREAM_ROOT}]}},
    }]}


def ensure_stream_queue(sqs, settings: Settings) -> tuple[str, str]:
    """The SQS queue that receives object-created events for ``stream/``; returns (url, arn)."""
    url = sqs.create_queue(QueueName=settings.stream_queue,
                           Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(queue_policy(arn, settings.bucket))})
    return url, arn


def ensure_stream_notifications(s3, settings: Settings, queue_arn: str) -> None:
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket, NotificationConfiguration=notification_configuration(queue_arn))


def account_of(arn: str) -> str:
    """The account field of an ARN (``arn:partition:service:region:account:…``)."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[4]


def _bootstrap_local(settings: Settings) -> dict[str, str]:
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
        # the emulator does not assume the role; it only needs a well-formed ARN in its account
        role_arn=f"arn:aws:iam::{account_of(queue_arn)}:role/{settings.bucket}-firehose",
    )
    hot = hot_tier.ensure(settings)
    return {"bucket": settings.bucket, "stream_queue_url": queue_url,
            "firehose_stream": settings.firehose_stream, "online_table": hot["OnlineTableName"],
            "kinesis_stream": hot["KinesisStreamName"]}


# --------------------------------------------------------------------------- aws: the stack

def stack_outputs(cfn, stack_name: str) -> dict[str, str]:
    """``{OutputKey: OutputValue}`` of a deployed stack; raises :class:`BootstrapError` if absent."""
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise BootstrapError(f"stack {stack_name!r} not found: deploy deploy/contrail.yaml first "
                             f"({exc.response['Error'].get('Message', exc)})") from exc
    stack = stacks[0]
    if not str(stack.get("StackStatus", "")).endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
        raise BootstrapError(f"stack {stack_name!r} is {stack['StackStatus']}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def find_serverless_application(emr_serverless, name: str = SERVERLESS_APPLICATION_NAME) -> str | None:
    """The id of the live application ``name``, or None."""
    for page in emr_serverless.get_paginator("list_applications").paginate():
        for app in page["applications"]:
            if app["name"] == name and app["state"] not in ("TERMINATED", "TERMINATING"):
                return app["id"]
    return None


def ensure_serverless_application(emr_serverless, release_label: str,
                                  name: str = SERVERLESS_APPLICATION_NAME) -> str:
    """The id of the Spark application ``name`` (created, as the stack would, if absent)."""
    found = find_serverless_application(emr_serverless, name)
    if found:
        return found
    created = emr_serverless.create_application(
        name=name, releaseLabel=release_label, type="SPARK",
        autoStartConfiguration={"enabled": True},
        autoStopConfiguration={"enabled": True, "idleTimeoutMinutes": 15},
        tags={"project": "contrail"})
    log.info("created EMR Serverless application %s (%s)", name, created["applicationId"])
    return created["applicationId"]


def _job_flow_config(settings: Settings) -> dict[str, Any]:
    from contrail.features import load_job_flow_config

    return load_job_flow_config(bucket=settings.bucket)


def _bootstrap_aws(settings: Settings) -> dict[str, str]:
    from contrail.simulate import ensure_delivery_stream

    outputs = stack_outputs(lake.client("cloudformation", settings), settings.stack_name)
    missing = [key for key in ("BucketName", "QueueUrl", "QueueArn", "FirehoseRoleArn") if key not in outputs]
    if missing:
        raise BootstrapError(f"stack {settings.stack_name!r} has no outputs {missing}")
    stream = outputs.get("FirehoseStreamName", settings.firehose_stream)
    ensure_delivery_stream(lake.client("firehose", settings), stream,
                           bucket_arn=f"arn:aws:s3:::{outputs['BucketName']}",
                           role_arn=outputs["FirehoseRoleArn"])
    outputs["FirehoseStreamName"] = stream
    outputs.update(hot_tier.ensure(settings, outputs))
    if "EmrServerlessApplicationId" not in outputs:
        outputs["EmrServerlessApplicationId"] = ensure_serverless_application(
            lake.client("emr-serverless", settings), _job_flow_config(settings)["ReleaseLabel"])
    return outputs


def bootstrap(settings: Settings) -> dict[str, str]:
    """Local: create or update every lake resource. AWS: read the stack and complete what the
    account lacks. Returns the identifiers (stack outputs on AWS)."""
    return _bootstrap_local(settings) if settings.is_local else _bootstrap_aws(settings)


def worker_environment(settings: Settings, outputs: Mapping[str, str]) -> dict[str, str]:
    """The environment every Airflow component needs on AWS, from the stack outputs (pure).

    Written by ``contrail bootstrap --env-file`` as an MWAA startup script (``export`` lines):
    the DAGs read these at parse time, where no network call is allowed.
    """
    from contrail.stream.events import QUEUE_URL_ENV

    return {
        "CONTRAIL_ENV": "aws",
        "CONTRAIL_STACK_NAME": settings.stack_name,
        "CONTRAIL_BUCKET": outputs["BucketName"],
        "CONTRAIL_SPARK_RUNNER": settings.spark_runner,
        QUEUE_URL_ENV: outputs["QueueUrl"],
        "CONTRAIL_EMR_SERVERLESS_APP_ID": outputs["EmrServerlessApplicationId"],
        "CONTRAIL_EMR_SERVERLESS_ROLE_ARN": outputs["EmrServerlessJobRoleArn"],
    }


def startup_script(environment: Mapping[str, str]) -> str:
    """An MWAA startup script exporting ``environment`` (pure)."""
    import shlex

    lines = ["#!/bin/sh", "# written by `contrail bootstrap --env-file` from the stack outputs"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(environment.items())]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- policy reading (pure)

def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_allows(document: Mapping[str, Any] | str, action: str, resource: str) -> bool:
    """Whether an identity policy has an Allow for ``action`` on ``resource`` and no Deny (pure).

    Wildcards in actions and resources are matched as IAM does; conditions are not evaluated
    (a statement with a condition counts as allowing: the check is about reach, not requests).
    """
    document = json.loads(document) if isinstance(document, str) else document

    def matches(statement: Mapping[str, Any]) -> bool:
        actions = _as_list(statement.get("Action", []))
        resources = _as_list(statement.get("Resource", []))
        return (any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions)
                and any(fnmatch.fnmatchcase(resource, r) for r in resources))

    statements = _as_list(document.get("Statement", []))
    if any(s.get("Effect") == "Deny" and matches(s) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and matches(s) for s in statements)


def worker_permissions(outputs: Mapping[str, str], *, region: str,
                       roles: Mapping[str, str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What the workers' policy must allow, and what it must not, as (action, resource) pairs.

    ``roles`` maps the EMR roles' names to their ARNs. The "must not" pairs are the same actions
    one step outside contrail's resources: another bucket, another queue, another role.
    """
    bucket = outputs["BucketName"]
    account = account_of(outputs["QueueArn"])
    partition = outputs["QueueArn"].split(":")[1]
    objects = f"arn:{partition}:s3:::{bucket}/landing/flights/dt=2013-01-01/v=0001/part.csv"
    firehose = f"arn:{partition}:firehose:{region}:{account}:deliverystream/{outputs['FirehoseStreamName']}"
    cluster = f"arn:{partition}:elasticmapreduce:{region}:{account}:cluster/j-CONTRAIL"
    app = f"arn:{partition}:emr-serverless:{region}:{account}:/applications/{outputs['EmrServerlessApplicationId']}"
    must = [("s3:ListBucket", f"arn:{partition}:s3:::{bucket}"),
            *((a, objects) for a in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")),
            *((a, outputs["QueueArn"]) for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage",
                                                 "sqs:GetQueueAttributes")),
            ("firehose:PutRecordBatch", firehose),
            ("elasticmapreduce:RunJobFlow", "*"),
            *((a, cluster) for a in ("elasticmapreduce:AddJobFlowSteps", "elasticmapreduce:DescribeStep",
                                     "elasticmapreduce:DescribeCluster", "elasticmapreduce:TerminateJobFlows")),
            *(("iam:PassRole", arn) for arn in roles.values()),
            ("iam:PassRole", outputs["EmrServerlessJobRoleArn"]),
            *((a, app) for a in ("emr-serverless:StartJobRun", "emr-serverless:GetJobRun")),
            *((a, f"{app}/jobruns/00000000") for a in ("emr-serverless:GetJobRun",
                                                        "emr-serverless:CancelJobRun")),
            ("logs:PutLogEvents", f"arn:{partition}:logs:{region}:{account}:log-group:airflow-contrail-Task:*")]
    hot_must, hot_must_not = hot_tier.worker_permissions(outputs, region=region, account=account, partition=partition)
    must_not = [("s3:GetObject", f"arn:{partition}:s3:::{bucket}-other/landing/x"),
                ("s3:DeleteBucket", f"arn:{partition}:s3:::{bucket}"),
                ("sqs:ReceiveMessage", f"arn:{partition}:sqs:{region}:{account}:{bucket}-other"),
                ("iam:PassRole", f"arn:{partition}:iam::{account}:role/some-admin-role"),
                ("iam:CreateRole", f"arn:{partition}:iam::{account}:role/x"),
                ("firehose:DeleteDeliveryStream", firehose)]
    return must + hot_must, must_not + hot_must_not


# --------------------------------------------------------------------------- check

def _problems_of(name: str, probe) -> list[str]:
    from botocore.exceptions import ClientError

    try:
        return list(probe())
    except ClientError as exc:
        return [f"{name}: {exc.response['Error'].get('Code')}: {exc.response['Error'].get('Message', '')}"]


def _check_bucket(s3, bucket: str, queue_arn: str, *, hardened: bool) -> Iterable[str]:
    from contrail.lifecycle import lifecycle_configuration, rule_summary

    s3.head_bucket(Bucket=bucket)
    if hardened:
        if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
            yield f"bucket {bucket}: versioning is not enabled"
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        if not any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules):
            yield f"bucket {bucket}: no default encryption"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        if not all(block.get(k) for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                          "RestrictPublicBuckets")):
            yield f"bucket {bucket}: public access is not fully blocked: {block}"
    stored = rule_summary(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])
    expected = rule_summary(lifecycle_configuration()["Rules"])
    if stored != expected:
        yield f"bucket {bucket}: lifecycle rules {stored} differ from contrail.lifecycle {expected}"
    configs = s3.get_bucket_notification_configuration(Bucket=bucket).get("QueueConfigurations", [])
    wanted = notification_configuration(queue_arn)["QueueConfigurations"][0]
    if not any(c["QueueArn"] == queue_arn and "s3:ObjectCreated:*" in c["Events"]
               and c.get("Filter") == wanted["Filter"] for c in configs):
        yield f"bucket {bucket}: no s3:ObjectCreated:* notification for stream/ to {queue_arn}"


def _check_queue(sqs, url: str, queue_arn: str, bucket: str, *, dead_letter: bool) -> Iterable[str]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    if attrs.get("QueueArn") != queue_arn:
        yield f"queue {url}: ARN {attrs.get('QueueArn')} is not {queue_arn}"
    policy = json.loads(attrs.get("Policy") or "{}")
    allowed = [s for s in _as_list(policy.get("Statement", []))
               if s.get("Effect") == "Allow" and "s3.amazonaws.com" in _as_list((s.get("Principal") or {}).get("Service", []))
               and "sqs:SendMessage" in _as_list(s.get("Action", []))
               and fnmatch.fnmatchcase(f"arn:{queue_arn.split(':')[1]}:s3:::{bucket}",
                                       str(((s.get("Condition") or {}).get("ArnLike") or {}).get("aws:SourceArn", "")))]
    if not allowed:
        yield f"queue {url}: its policy does not let bucket {bucket} send notifications"
    if dead_letter and "deadLetterTargetArn" not in json.loads(attrs.get("RedrivePolicy") or "{}"):
        yield f"queue {url}: no dead-letter queue"


def _check_stream(firehose, name: str, bucket: str) -> Iterable[str]:
    from contrail.simulate import STREAM_PREFIX

    description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    if description["DeliveryStreamStatus"] != "ACTIVE":
        yield f"Firehose {name}: {description['DeliveryStreamStatus']}, not ACTIVE"
    targets = [d.get("ExtendedS3DestinationDescription") or d.get("S3DestinationDescription") or {}
               for d in description.get("Destinations", [])]
    if not any(t.get("BucketARN") == f"arn:aws:s3:::{bucket}" and t.get("Prefix") == STREAM_PREFIX for t in targets):
        yield f"Firehose {name}: does not deliver to s3://{bucket}/{STREAM_PREFIX}"


def _check_emr(iam, emr, config: Mapping[str, Any], outputs: Mapping[str, str]) -> Iterable[str]:
    service = iam.get_role(RoleName=config["ServiceRole"])["Role"]
    if outputs.get("EmrServiceRoleArn") != service["Arn"]:
        yield f"ServiceRole {config['ServiceRole']}: {service['Arn']} is not the stack's {outputs.get('EmrServiceRoleArn')}"
    profile = iam.get_instance_profile(InstanceProfileName=config["JobFlowRole"])["InstanceProfile"]
    if not profile.get("Roles"):
        yield f"instance profile {config['JobFlowRole']} has no role"
    if outputs.get("EmrInstanceProfile") != config["JobFlowRole"]:
        yield f"JobFlowRole {config['JobFlowRole']} is not the stack's {outputs.get('EmrInstanceProfile')}"
    emr.describe_security_configuration(Name=config["SecurityConfiguration"])
    if outputs.get("EmrSecurityConfiguration") != config["SecurityConfiguration"]:
        yield (f"SecurityConfiguration {config['SecurityConfiguration']} is not the stack's "
               f"{outputs.get('EmrSecurityConfiguration')}")


def _check_serverless(emr_serverless, iam, outputs: Mapping[str, str], release_label: str) -> Iterable[str]:
    app = emr_serverless.get_application(applicationId=outputs["EmrServerlessApplicationId"])["application"]
    if app["type"].upper() != "SPARK" or app["state"] in ("TERMINATED", "TERMINATING"):
        yield f"EMR Serverless application {app['applicationId']}: {app['type']} {app['state']}"
    if app["releaseLabel"] != release_label:
        yield f"EMR Serverless application runs {app['releaseLabel']}, the job flow {release_label}"
    iam.get_role(RoleName=outputs["EmrServerlessJobRoleArn"].rsplit("/", 1)[-1])


def _check_worker_policy(iam, outputs: Mapping[str, str], region: str, roles: Mapping[str, str]) -> Iterable[str]:
    policy = iam.get_policy(PolicyArn=outputs["WorkerPolicyArn"])["Policy"]
    document = iam.get_policy_version(PolicyArn=outputs["WorkerPolicyArn"],
                                      VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"]
    if isinstance(document, str):  # boto3 decodes it; a raw URL-encoded string is tolerated
        from urllib.parse import unquote

        document = json.loads(unquote(document))
    must, must_not = worker_permissions(outputs, region=region, roles=roles)
    for action, resource in must:
        if not policy_allows(document, action, resource):
            yield f"worker policy does not allow {action} on {resource}"
    for action, resource in must_not:
        if policy_allows(document, action, resource):
            yield f"worker policy allows {action} on {resource}: broader than contrail needs"


def check(settings: Settings, outputs: Mapping[str, str] | None = None) -> list[str]:
    """Every problem with the resources the DAGs name ([] = all there, as the code expects).

    Creates nothing. AWS: ``outputs`` default to the stack's (DescribeStacks).
    """
    problems: list[str] = []
    s3, sqs, firehose = (lake.client(name, settings) for name in ("s3", "sqs", "firehose"))
    if settings.is_local:
        from botocore.exceptions import ClientError

        try:
            url = sqs.get_queue_url(QueueName=settings.stream_queue)["QueueUrl"]
        except ClientError:
            return [f"queue {settings.stream_queue} does not exist: run `contrail bootstrap`"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        problems += _problems_of("bucket", lambda: _check_bucket(s3, settings.bucket, arn, hardened=False))
        problems += _problems_of("queue", lambda: _check_queue(sqs, url, arn, settings.bucket, dead_letter=False))
        problems += _problems_of("firehose", lambda: _check_stream(firehose, settings.firehose_stream, settings.bucket))
        problems += hot_tier.check(settings, None, _problems_of)
        return problems
    if outputs is None:
        outputs = stack_outputs(lake.client("cloudformation", settings), settings.stack_name)
    outputs = dict(outputs)
    # a stack that could not hold these (an emulator's) leaves them to bootstrap: find them by name
    outputs.setdefault("FirehoseStreamName", settings.firehose_stream)
    outputs = {**hot_tier.names_of(settings, outputs), **outputs}
    if "EmrServerlessApplicationId" not in outputs:
        found = find_serverless_application(lake.client("emr-serverless", settings))
        if found:
            log.info("EMR Serverless application %s is not a stack output; found by name", found)
            outputs["EmrServerlessApplicationId"] = found
    absent = [key for key in STACK_OUTPUTS if key not in outputs]
    if absent:
        return [f"stack {settings.stack_name!r} lacks outputs {absent}"]
    bucket, arn = outputs["BucketName"], outputs["QueueArn"]
    if bucket != settings.bucket:
        problems.append(f"CONTRAIL_BUCKET is {settings.bucket!r}, the stack's bucket {bucket!r}")
    if outputs["QueueUrl"].rsplit("/", 1)[-1] != settings.stream_queue:
        problems.append(f"the stack's queue {outputs['QueueUrl']} is not {settings.stream_queue}")
    if outputs["FirehoseStreamName"] != settings.firehose_stream:
        problems.append(f"the stack's stream {outputs['FirehoseStreamName']} is not {settings.firehose_stream}")
    iam, emr = lake.client("iam", settings), lake.client("emr", settings)
    config = _job_flow_config(settings)
    problems += _problems_of("bucket", lambda: _check_bucket(s3, bucket, arn, hardened=True))
    problems += _problems_of("queue", lambda: _check_queue(sqs, outputs["QueueUrl"], arn, bucket, dead_letter=True))
    problems += _problems_of("firehose", lambda: _check_stream(firehose, outputs["FirehoseStreamName"], bucket))
    problems += hot_tier.check(settings, outputs, _problems_of)
    problems += _problems_of("emr", lambda: _check_emr(iam, emr, config, outputs))
    problems += _problems_of("emr-serverless", lambda: _check_serverless(
        lake.client("emr-serverless", settings), iam, outputs, config["ReleaseLabel"]))

    def worker_policy() -> Iterable[str]:
        profile = iam.get_instance_profile(InstanceProfileName=config["JobFlowRole"])["InstanceProfile"]
        roles = {config["ServiceRole"]: iam.get_role(RoleName=config["ServiceRole"])["Role"]["Arn"],
                 **{role["RoleName"]: role["Arn"] for role in profile["Roles"]}}
        return _check_worker_policy(iam, outputs, settings.region, roles)

    problems += _problems_of("worker policy", worker_policy)
    return problems
