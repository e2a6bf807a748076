"""EMR request payloads and leak guards (contrail.emr): pure builders, plus the two S3 edges
on in-process moto. No Airflow run, no cluster."""

from __future__ import annotations

import copy
import hashlib
import json
from types import SimpleNamespace

import boto3
import jinja2
import pytest
from moto import mock_aws

from contrail import emr, features
from contrail.settings import REPO_ROOT, load_settings

SETTINGS = load_settings({"CONTRAIL_BUCKET": "lake-test", "CONTRAIL_SPARK_RUNNER": "emr"})
ARTIFACT = "s3://lake-test/artifacts/spark/contrail_spark-0123456789ab.zip"
ENTRY = "s3://lake-test/artifacts/spark/main-ba9876543210.py"
PLAN = "s3://lake-test/artifacts/plans/flights_v1/00112233aabbccdd.json"


class FakeTI:
    """Answers ``ti.xcom_pull`` the way the plan / upload_entry tasks' XComs would."""

    def xcom_pull(self, task_ids):
        return {emr.PLAN_TASK: {"artifact_uri": ARTIFACT, "plan_uri": PLAN, "targets": ["2013-01-02"]},
                emr.UPLOAD_ENTRY_TASK: ENTRY,
                emr.CREATE_CLUSTER_TASK: "j-ABC",
                emr.ADD_STEPS_TASK: ["s-1", "s-2"]}.get(task_ids)


def render(node, ti=FakeTI()):
    """Render Jinja in every string of ``node``, as Airflow does for templated fields."""
    if isinstance(node, str):
        return jinja2.Template(node).render(ti=ti, run_id="manual__2013-01-02")
    if isinstance(node, list):
        return [render(n, ti) for n in node]
    if isinstance(node, dict):
        return {k: render(v, ti) for k, v in node.items()}
    return node


def fleets(config):
    return {f["InstanceFleetType"]: f for f in config["Instances"]["InstanceFleets"]}


# ---------------------------------------------------------------------------- run_job_flow

def test_job_flow_overrides_fill_bucket_name_and_run_tags():
    got = emr.job_flow_overrides(SETTINGS, run_id="manual__2013-01-02")
    committed = json.loads(features.EMR_JOB_FLOW_CONFIG.read_text())
    assert got["ReleaseLabel"] == committed["ReleaseLabel"] and got["ReleaseLabel"].startswith("emr-7.")
    assert got["LogUri"] == "s3://lake-test/logs/emr/"
    assert got["SecurityConfiguration"] == "contrail-emr-security"
    assert got["AutoTerminationPolicy"] == {"IdleTimeout": 900}
    assert got["Instances"]["TerminationProtected"] is False
    assert got["Name"] == "contrail-features-manual__2013-01-02"
    tags = {t["Key"]: t["Value"] for t in got["Tags"]}
    assert tags["project"] == "contrail" and tags["transient"] == "true"
    assert tags["airflow-dag-id"] == "features" and tags["airflow-run-id"] == "manual__2013-01-02"
    by_type = fleets(got)
    assert by_type["CORE"]["TargetOnDemandCapacity"] > 0 and "TargetSpotCapacity" not in by_type["CORE"]
    assert by_type["TASK"]["TargetSpotCapacity"] > 0 and "TargetOnDemandCapacity" not in by_type["TASK"]
    assert "{bucket}" not in json.dumps(got) and "{{" not in json.dumps(got)


def test_job_flow_overrides_templated_run_id_renders():
    got = render(emr.job_flow_overrides(SETTINGS, run_id="{{ run_id }}"))
    assert got["Name"].endswith("-manual__2013-01-02")
    assert {"Key": "airflow-run-id", "Value": "manual__2013-01-02"} in got["Tags"]


def test_job_flow_overrides_do_not_mutate_between_calls():
    a = emr.job_flow_overrides(SETTINGS, run_id="r1")
    b = emr.job_flow_overrides(SETTINGS, run_id="r2")
    def run_tags(config):
        return [t["Value"] for t in config["Tags"] if t["Key"] == "airflow-run-id"]

    assert run_tags(a) == ["r1"] and run_tags(b) == ["r2"]


def _committed():
    return features.load_job_flow_config(bucket="lake-test")


def test_committed_config_passes_the_leak_checks():
    assert emr.check_job_flow(_committed(), bucket="lake-test") == []


@pytest.mark.parametrize("breakage, expected", [
    (lambda c: c["Instances"].__setitem__("TerminationProtected", True), "TerminationProtected"),
    (lambda c: c.pop("AutoTerminationPolicy"), "IdleTimeout"),
    (lambda c: c.__setitem__("AutoTerminationPolicy", {"IdleTimeout": 86400}), "IdleTimeout"),
    (lambda c: c.__setitem__("LogUri", "s3://elsewhere/logs/"), "LogUri"),
    (lambda c: c.pop("ReleaseLabel"), "ReleaseLabel"),
    (lambda c: fleets(c)["CORE"].__setitem__("TargetSpotCapacity", 2), "CORE"),
    (lambda c: fleets(c)["TASK"].__setitem__("TargetOnDemandCapacity", 2), "TASK"),
], ids=["protected", "no-idle-timeout", "idle-too-long", "log-uri", "release", "spot-core", "on-demand-task"])
def test_check_job_flow_flags_each_leak(breakage, expected):
    config = copy.deepcopy(_committed())
    breakage(config)
    problems = emr.check_job_flow(config, bucket="lake-test")
    assert len(problems) == 1 and expected in problems[0]


def test_job_flow_overrides_refuse_a_leaky_config(tmp_path):
    config = json.loads(features.EMR_JOB_FLOW_CONFIG.read_text())
    config["Instances"]["TerminationProtected"] = True
    del config["AutoTerminationPolicy"]
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="TerminationProtected.*IdleTimeout"):
        emr.job_flow_overrides(SETTINGS, run_id="r", config_path=path)


# ---------------------------------------------------------------------------- steps, logs, guards

def test_add_steps_payload_renders_to_the_exact_uris():
    steps = render(emr.add_steps_payload())
    assert steps == features.emr_steps(ARTIFACT, ENTRY, PLAN)
    args = steps[0]["HadoopJarStep"]["Args"]
    assert args[args.index("--py-files") + 1] == ARTIFACT
    assert args[args.index("--plan") + 1] == PLAN
    assert ENTRY in args and args[:3] == ["spark-submit", "--deploy-mode", "cluster"]


def test_cluster_and_step_templates_render_ids_and_empty_without_cluster():
    assert render(emr.CLUSTER_ID_XCOM) == "j-ABC"
    assert render(emr.LAST_STEP_ID_XCOM) == "s-2"

    class NoCluster:
        def xcom_pull(self, task_ids):
            return None

    assert render(emr.CLUSTER_ID_XCOM, NoCluster()) == ""
    assert render(emr.LAST_STEP_ID_XCOM, NoCluster()) == ""


def test_step_log_uri():
    assert emr.step_log_uri("lake", "j-1ABC", "s-2XYZ") == "s3://lake/logs/emr/j-1ABC/steps/s-2XYZ/"


def test_terminate_skips_only_without_a_cluster():
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException):
        emr.skip_without_cluster({"task": SimpleNamespace(job_flow_id="")})
    assert emr.skip_without_cluster({"task": SimpleNamespace(job_flow_id="j-1")}) is None


# ---------------------------------------------------------------------------- serverless

def test_serverless_job_from_committed_config():
    job = emr.serverless_job(SETTINGS, artifact_uri=ARTIFACT, entry_uri=ENTRY, plan_uri=PLAN)
    driver = job["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == ENTRY
    assert driver["entryPointArguments"] == ["--plan", PLAN, "--io", "s3"]
    assert driver["sparkSubmitParameters"].startswith(f"--py-files {ARTIFACT} ")
    log_uri = job["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"]["logUri"]
    assert log_uri == "s3://lake-test/logs/emr-serverless/"
    assert emr.serverless_job_driver(SETTINGS, artifact_uri=ARTIFACT, entry_uri=ENTRY,
                                     plan_uri=PLAN) == job["jobDriver"]


def test_serverless_job_default_templates_render_from_xcom():
    job = render(emr.serverless_job(SETTINGS))
    assert job == emr.serverless_job(SETTINGS, artifact_uri=ARTIFACT, entry_uri=ENTRY, plan_uri=PLAN)


def test_serverless_ids_from_env_else_runtime_variables():
    assert emr.serverless_ids({"CONTRAIL_EMR_SERVERLESS_APP_ID": "00abc",
                               "CONTRAIL_EMR_SERVERLESS_ROLE_ARN": "arn:aws:iam::1:role/x"}) == (
        "00abc", "arn:aws:iam::1:role/x")
    app, role = emr.serverless_ids({})
    assert "var.value.contrail_emr_serverless_app_id" in app and "var.value" in role


# ---------------------------------------------------------------------------- S3 edges

@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lake-test")
        yield client


def test_upload_entry_is_content_named_and_idempotent(s3):
    body = (REPO_ROOT / "spark_jobs" / "main.py").read_bytes()
    uri = emr.upload_entry(s3, "lake-test")
    assert uri == f"s3://lake-test/artifacts/spark/main-{hashlib.sha256(body).hexdigest()[:12]}.py"
    key = uri.removeprefix("s3://lake-test/")
    first = s3.head_object(Bucket="lake-test", Key=key)["LastModified"]
    assert emr.upload_entry(s3, "lake-test") == uri
    assert s3.head_object(Bucket="lake-test", Key=key)["LastModified"] == first
    assert s3.get_object(Bucket="lake-test", Key=key)["Body"].read() == body
