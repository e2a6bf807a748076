"""deploy/contrail.yaml: cfn-lint passes, it names what the code names, and deployed into the
emulator's CloudFormation it gives resources that ``contrail bootstrap --check`` accepts.

moto's CloudFormation does not implement every resource type of the template, nor every
property of ``AWS::S3::Bucket``; :func:`emulator_template` strips what it cannot deploy and the
deploy test prints that list and supplies those parts through their own APIs, as ``contrail
bootstrap`` (or, for the bucket's settings, contrail's own code) would.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from contrail import lifecycle, online_store
from contrail.features import load_job_flow_config
from contrail.settings import REPO_ROOT, load_settings
from contrail.simulate import STREAM_PREFIX
from contrail.stack import bootstrap

TEMPLATE = REPO_ROOT / "deploy" / "contrail.yaml"
STACK = "contrail-ci"
BUCKET = "contrail-lake"
REGION = "us-east-1"
# Properties of AWS::S3::Bucket moto's CloudFormation ignores (it applies BucketEncryption and Tags).
BUCKET_PROPERTIES_NOT_DEPLOYED = ("VersioningConfiguration", "PublicAccessBlockConfiguration",
                                  "LifecycleConfiguration", "NotificationConfiguration", "OwnershipControls")


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data, short-form tags (``!Ref``, ``!Sub``) as their long form."""
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(path))))


def _references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, ${…} in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
            found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def emulator_template(template: dict[str, Any], supported: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The template without the resources whose type the emulator cannot create.

    Drops each resource whose ``Type`` is not in ``supported``, every output that refers to a
    dropped resource and every ``DependsOn`` naming one; returns (variant, {logical id: type}
    of what was dropped). Anything else referring to a dropped resource is an error: the
    variant must not silently change what the remaining resources mean.
    """
    variant = copy.deepcopy(template)
    dropped = {name: res["Type"] for name, res in template["Resources"].items() if res["Type"] not in supported}
    for name in dropped:
        del variant["Resources"][name]
    for name, res in variant["Resources"].items():
        depends = [d for d in ([res["DependsOn"]] if isinstance(res.get("DependsOn"), str) else res.get("DependsOn", []))
                   if d not in dropped]
        if "DependsOn" in res:
            res.pop("DependsOn")
            if depends:
                res["DependsOn"] = depends
        still = _references(res) & set(dropped)
        if still:
            raise ValueError(f"{name} refers to {sorted(still)}, which the emulator cannot create")
    variant["Outputs"] = {k: v for k, v in template.get("Outputs", {}).items() if not _references(v) & set(dropped)}
    return variant, dropped


def moto_cloudformation_types() -> set[str]:
    from moto.cloudformation.parsing import get_model_map

    return set(get_model_map())


# --------------------------------------------------------------------------- static checks

def _lint(path: Path) -> list[str]:
    from cfnlint.api import lint_file

    return [str(match) for match in lint_file(path)]


def test_cfn_lint_passes() -> None:
    assert _lint(TEMPLATE) == []


def test_cfn_lint_would_catch_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("SqsManagedSseEnabled: true", "SqsManagedSseEnabled: maybe", 1)
                      .replace("!GetAtt StreamDeadLetterQueue.Arn", "!GetAtt NoSuchQueue.Arn"))
    problems = _lint(broken)
    assert any("NoSuchQueue" in p for p in problems) and any("maybe" in p for p in problems), problems


def test_no_account_id_region_or_secret_is_written() -> None:
    text = TEMPLATE.read_text()
    assert not re.search(r"\b\d{12}\b", text), "an account id is written in the template"
    assert not re.search(r"\b(us|eu|ap|sa|ca|me|af)-[a-z]+-\d\b", text), "a region is written in the template"
    assert not re.search(r"AKIA|ASIA|aws_secret|SecretAccessKey|Password", text)
    assert not re.search(r"arn:aws:", text), "ARNs must take the partition from AWS::Partition"


def test_lifecycle_rules_are_contrail_lifecycle() -> None:
    bucket = load_template()["Resources"]["LakeBucket"]["Properties"]
    assert bucket["LifecycleConfiguration"]["Rules"] == lifecycle.cloudformation_rules()


def test_template_names_what_the_code_names() -> None:
    template = load_template()
    res, params = template["Resources"], template["Parameters"]
    settings = load_settings({"CONTRAIL_ENV": "aws", "CONTRAIL_BUCKET": BUCKET})
    sub = {"${LakeBucketName}": BUCKET}

    def name(value: dict[str, str]) -> str:
        text = value["Fn::Sub"]
        for key, repl in sub.items():
            text = text.replace(key, repl)
        return text

    assert name(res["StreamQueue"]["Properties"]["QueueName"]) == settings.stream_queue
    stream = res["FlightEventsStream"]["Properties"]
    assert name(stream["DeliveryStreamName"]) == settings.firehose_stream
    assert stream["ExtendedS3DestinationConfiguration"]["Prefix"] == STREAM_PREFIX
    config = load_job_flow_config(bucket=BUCKET)
    assert params["EmrServiceRoleName"]["Default"] == config["ServiceRole"]
    assert params["EmrInstanceRoleName"]["Default"] == config["JobFlowRole"]
    assert params["EmrSecurityConfigurationName"]["Default"] == config["SecurityConfiguration"]
    assert params["EmrReleaseLabel"]["Default"] == config["ReleaseLabel"]
    assert res["FeaturesApplication"]["Properties"]["Name"] == bootstrap.SERVERLESS_APPLICATION_NAME
    (notification,) = res["LakeBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    code = bootstrap.notification_configuration("arn")["QueueConfigurations"][0]
    assert [notification["Event"]] == code["Events"]
    assert notification["Filter"]["S3Key"]["Rules"] == code["Filter"]["Key"]["FilterRules"]
    (statement,) = res["StreamQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (expected,) = bootstrap.queue_policy("arn", BUCKET)["Statement"]
    assert (statement["Principal"], statement["Action"]) == (expected["Principal"], expected["Action"])
    assert set(bootstrap.STACK_OUTPUTS) <= set(template["Outputs"])
    # the hot tier: the online store's table as the code creates it, the Kinesis stream by name
    from contrail import online_store

    table = res["OnlineFeatureStore"]["Properties"]
    code_table = online_store.table_definition(settings.online_table)
    assert name(table["TableName"]) == settings.online_table
    assert (table["KeySchema"], table["AttributeDefinitions"], table["BillingMode"]) == (
        code_table["KeySchema"], code_table["AttributeDefinitions"], code_table["BillingMode"])
    assert table["TimeToLiveSpecification"] == {"AttributeName": online_store.ONLINE_EXPIRES, "Enabled": True}
    assert name(res["FlightEventsLive"]["Properties"]["Name"]) == settings.kinesis_stream


def test_the_workers_may_pass_only_the_emr_roles() -> None:
    statements = load_template()["Resources"]["WorkerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    passing = [s for s in statements if "iam:PassRole" in bootstrap._as_list(s["Action"])]
    assert len(passing) == 1
    assert {r["Fn::GetAtt"][0] for r in passing[0]["Resource"]} == {
        "EmrServiceRole", "EmrInstanceRole", "EmrServerlessJobRole"}
    # on "*" only what IAM cannot scope to a resource, or what creates the resource (tag-conditioned)
    unscoped = {a for s in statements if s.get("Resource") == "*" for a in bootstrap._as_list(s["Action"])}
    assert unscoped == {"s3:GetAccountPublicAccessBlock", "cloudwatch:PutMetricData",
                        "elasticmapreduce:RunJobFlow", "elasticmapreduce:AddTags"}


def test_emulator_template_drops_unsupported_resources_and_what_refers_to_them() -> None:
    variant, dropped = emulator_template(load_template(), {"AWS::SQS::Queue"})
    assert set(variant["Resources"]) == {"StreamQueue", "StreamDeadLetterQueue"}
    assert "LakeBucket" in dropped and set(variant["Outputs"]) == {"QueueUrl", "QueueArn", "DeadLetterQueueUrl"}


# --------------------------------------------------------------------------- policy reading

POLICY = {"Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:Put*"], "Resource": "arn:aws:s3:::lake/*"},
    {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::lake/landing/*"},
    {"Effect": "Allow", "Action": "iam:PassRole", "Resource": ["arn:aws:iam::1:role/a"]},
]}


@pytest.mark.parametrize("action, resource, allowed", [
    ("s3:GetObject", "arn:aws:s3:::lake/features/x", True),
    ("S3:getobject", "arn:aws:s3:::lake/features/x", True),
    ("s3:PutObjectTagging", "arn:aws:s3:::lake/x", True),
    ("s3:PutObject", "arn:aws:s3:::lake/landing/x", False),
    ("s3:GetObject", "arn:aws:s3:::lake-other/x", False),
    ("s3:DeleteObject", "arn:aws:s3:::lake/x", False),
    ("iam:PassRole", "arn:aws:iam::1:role/a", True),
    ("iam:PassRole", "arn:aws:iam::1:role/admin", False),
])
def test_policy_allows(action: str, resource: str, allowed: bool) -> None:
    assert bootstrap.policy_allows(POLICY, action, resource) is allowed


def test_startup_script_quotes_values() -> None:
    script = bootstrap.startup_script({"A": "x y", "B": "https://q/1/n"})
    assert script.splitlines()[2:] == ["export A='x y'", "export B=https://q/1/n"]


# --------------------------------------------------------------------------- into the emulator

@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[dict[str, Any]]:
    """The template deployed into moto's CloudFormation (in process), completed where moto cannot."""
    from moto import mock_aws

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": REGION, "CONTRAIL_ENV": "aws", "CONTRAIL_BUCKET": BUCKET,
           "CONTRAIL_STACK_NAME": STACK, "CONTRAIL_SPARK_RUNNER": "emr_serverless"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        import boto3

        template = load_template()
        variant, dropped = emulator_template(template, moto_cloudformation_types())
        bucket_props = template["Resources"]["LakeBucket"]["Properties"]
        with capsys.disabled():
            print(f"\nnot deployable into moto's CloudFormation (resources): {dropped}")
            print(f"not applied by moto's CloudFormation (LakeBucket properties): {list(BUCKET_PROPERTIES_NOT_DEPLOYED)}")
        cfn = boto3.client("cloudformation", region_name=REGION)
        cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(variant),
                         Parameters=[{"ParameterKey": "LakeBucketName", "ParameterValue": BUCKET}],
                         Capabilities=["CAPABILITY_NAMED_IAM"])
        outputs = bootstrap.stack_outputs(cfn, STACK)
        # what moto's CloudFormation left out, supplied through the services' own APIs
        s3, sqs = boto3.client("s3", region_name=REGION), boto3.client("sqs", region_name=REGION)
        assert "Status" not in s3.get_bucket_versioning(Bucket=BUCKET), "moto now applies versioning"
        assert not s3.get_bucket_notification_configuration(Bucket=BUCKET).get("QueueConfigurations")
        sqs.set_queue_attributes(QueueUrl=outputs["QueueUrl"], Attributes={
            "Policy": json.dumps(bootstrap.queue_policy(outputs["QueueArn"], BUCKET))})
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration=bucket_props["VersioningConfiguration"])
        s3.put_public_access_block(Bucket=BUCKET,
                                   PublicAccessBlockConfiguration=bucket_props["PublicAccessBlockConfiguration"])
        lifecycle.apply_lifecycle(s3, BUCKET)  # equal to the template's rules (test above)
        bootstrap.ensure_stream_notifications(s3, load_settings(), outputs["QueueArn"])
        yield {"dropped": dropped, "outputs": outputs, "boto3": boto3}


def _cli(*argv: str) -> int:
    from contrail.cli import main

    return main(["bootstrap", *argv])


def test_deployed_stack_passes_bootstrap_check(deployed: dict[str, Any], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert deployed["dropped"] == {"StreamQueuePolicy": "AWS::SQS::QueuePolicy",
                                   "FlightEventsStream": "AWS::KinesisFirehose::DeliveryStream",
                                   "FeaturesApplication": "AWS::EMRServerless::Application"}, \
        "moto's CloudFormation coverage changed: update what this test supplies by hand"
    assert _cli("--check") == 1  # before bootstrap: no Firehose stream, no EMR Serverless application
    out = capsys.readouterr().out
    assert "lacks outputs ['EmrServerlessApplicationId']" in out or "Firehose" in out, out

    env_file = tmp_path / "startup.sh"
    assert _cli("--env-file", str(env_file)) == 0
    identifiers = json.loads(capsys.readouterr().out.split("\nwrote ")[0])
    assert _cli("--check") == 0, capsys.readouterr().out

    boto3 = deployed["boto3"]
    # the two resources the emulator's CloudFormation could not create, through their own APIs
    stream = boto3.client("firehose", region_name=REGION).describe_delivery_stream(
        DeliveryStreamName=identifiers["FirehoseStreamName"])["DeliveryStreamDescription"]
    destination = stream["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert (destination["BucketARN"], destination["Prefix"], destination["RoleARN"]) == (
        f"arn:aws:s3:::{BUCKET}", STREAM_PREFIX, deployed["outputs"]["FirehoseRoleArn"])
    app = boto3.client("emr-serverless", region_name=REGION).get_application(
        applicationId=identifiers["EmrServerlessApplicationId"])["application"]
    assert (app["name"], app["releaseLabel"]) == (bootstrap.SERVERLESS_APPLICATION_NAME,
                                                  load_job_flow_config(bucket=BUCKET)["ReleaseLabel"])
    script = env_file.read_text()
    assert f"export CONTRAIL_STREAM_QUEUE_URL={deployed['outputs']['QueueUrl']}" in script
    assert f"export CONTRAIL_EMR_SERVERLESS_APP_ID={app['applicationId']}" in script
    assert "export CONTRAIL_ENV=aws" in script
    # the hot tier came from the stack itself (moto's CloudFormation creates both)
    outputs = deployed["outputs"]
    assert (outputs["OnlineTableName"], outputs["KinesisStreamName"]) == (
        f"{BUCKET}-online-features", f"{BUCKET}-flight-events-live")


def test_check_reports_drift(deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli() == 0
    boto3, outputs = deployed["boto3"], deployed["outputs"]
    settings = load_settings()
    assert bootstrap.check(settings) == []

    boto3.client("s3", region_name=REGION).delete_bucket_lifecycle(Bucket=BUCKET)
    iam = boto3.client("iam", region_name=REGION)
    broad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}]}
    iam.create_policy_version(PolicyArn=outputs["WorkerPolicyArn"], PolicyDocument=json.dumps(broad),
                              SetAsDefault=True)
    problems = bootstrap.check(settings)
    assert any("lifecycle" in p or "NoSuchLifecycleConfiguration" in p for p in problems), problems
    assert any("allows iam:PassRole" in p and "broader" in p for p in problems), problems
    assert any("does not allow sqs:ReceiveMessage" in p for p in problems), problems
    assert any("does not allow dynamodb:BatchGetItem" in p for p in problems), problems
    assert _cli("--check") == 1


def test_check_refuses_a_missing_stack(monkeypatch: pytest.MonkeyPatch, moto_s3: Any,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONTRAIL_ENV", "aws")
    monkeypatch.setenv("CONTRAIL_STACK_NAME", "no-such-stack")
    assert _cli() == 1
    assert "stack 'no-such-stack' not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- DAGs on AWS settings

def _stream_dags(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]):
    import socket

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv("CONTRAIL_STREAM_QUEUE_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def refuse(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("DAG files must not touch the network at parse time")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return DagBag(str(REPO_ROOT / "dags" / "stream.py"))


def _stream_asset(bag):
    (asset,) = bag.dags["stream_scoring"].timetable.asset_condition.objects
    return asset


def test_stream_dags_parse_on_aws_without_the_queue_url(monkeypatch: pytest.MonkeyPatch) -> None:
    bag = _stream_dags(monkeypatch, {"CONTRAIL_ENV": "aws"})
    assert not bag.import_errors, bag.import_errors
    assert {"stream_scoring", "stream_sweep", "compaction"} <= set(bag.dag_ids)
    assert _stream_asset(bag).watchers == []  # the sweep alone keeps the stream scored


@pytest.mark.parametrize("source", ["firehose", "kinesis"])
def test_the_stream_source_switch_schedules_one_source(monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    bag = _stream_dags(monkeypatch, {"CONTRAIL_ENV": "local", "CONTRAIL_STREAM_SOURCE": source})
    assert not bag.import_errors, bag.import_errors
    kinesis, sweep = bag.dags["stream_kinesis"], bag.dags["stream_sweep"]
    watched = bool(_stream_asset(bag).watchers)
    if source == "kinesis":
        assert kinesis.schedule is not None and sweep.schedule is None and not watched
    else:
        assert kinesis.schedule is None and sweep.schedule is not None and watched


def test_stream_dags_watch_the_stack_queue_when_known(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/000000000000/contrail-lake-stream-events"
    bag = _stream_dags(monkeypatch, {"CONTRAIL_ENV": "aws", "CONTRAIL_STREAM_QUEUE_URL": url})
    assert not bag.import_errors, bag.import_errors
    (watcher,) = _stream_asset(bag).watchers
    assert watcher.trigger.serialize()[1]["sqs_queue"] == url


# --------------------------------------------------------------------------- the local emulator

@pytest.fixture
def emulator_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server on a free loopback port, named by CONTRAIL_EMULATOR_URL as compose names moto."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for key, value in {"CONTRAIL_ENV": "local", "CONTRAIL_EMULATOR_URL": url, "CONTRAIL_BUCKET": BUCKET,
                       "CONTRAIL_EMULATOR_PORT": "1"}.items():  # the URL wins over the port
        monkeypatch.setenv(key, value)
    try:
        yield url
    finally:
        server.stop()


def test_local_bootstrap_then_check(emulator_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings()
    assert settings.emulator_url == emulator_url
    assert bootstrap.check(settings) == [f"queue {settings.stream_queue} does not exist: run `contrail bootstrap`"]
    identifiers = bootstrap.bootstrap(settings)
    assert identifiers["stream_queue_url"].startswith(emulator_url)
    assert _cli("--check") == 0, capsys.readouterr().out
    s3 = bootstrap.lake.client("s3", settings)
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
    assert any("no s3:ObjectCreated:* notification for stream/" in p for p in bootstrap.check(settings))
    assert _cli() == 0 and bootstrap.check(settings) == []  # bootstrap is idempotent and repairs it
    assert (identifiers["online_table"], identifiers["kinesis_stream"]) == (settings.online_table,
                                                                           settings.kinesis_stream)
    dynamodb = bootstrap.lake.client("dynamodb", settings)
    dynamodb.update_time_to_live(TableName=settings.online_table, TimeToLiveSpecification={
        "Enabled": False, "AttributeName": online_store.ONLINE_EXPIRES})
    assert any("TTL is not enabled" in p for p in bootstrap.check(settings))
    dynamodb.delete_table(TableName=settings.online_table)
    assert any(p.startswith("online store: ResourceNotFoundException") for p in bootstrap.check(settings))
    assert _cli() == 0 and bootstrap.check(settings) == []
