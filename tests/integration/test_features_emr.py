"""The ``features`` DAG built with ``CONTRAIL_SPARK_RUNNER=emr``, run through ``dag.test()``
against in-process moto (``ThreadedMotoServer`` on a free loopback port, so the deferrable
sensor's aiobotocore client reaches it too).

moto never finishes an EMR step. A small local step runner stands in for the cluster: it
wraps moto's ``describe_step`` and, from the second poll on (the sensor's first poke sees
RUNNING, so the sensor defers and its trigger runs inline), finishes the step as the test
asks — COMPLETED after staging a build (a part and its manifest) for every target of the plan the
step was given, FAILED, or never (the wait times out). Every run must end with the cluster
TERMINATED. The RunJobFlow / AddJobFlowSteps / TerminateJobFlows request payloads are
captured at the botocore client. A killed wait is the deferred sensor ending failed from
outside, as when a person marks it failed in the UI or its worker dies (``WaitKilled``
raised where ``dag.test`` would run the sensor's trigger inline).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUCKET = "contrail-lake"
FEATURE_SET = "flights_v1"
DAYS = ("2013-01-01", "2013-01-02")
ACCOUNT, REGION = "123456789012", "us-east-1"
CAPTURED_OPERATIONS = {"RunJobFlow", "AddJobFlowSteps", "TerminateJobFlows", "StartJobRun"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def emulator():
    """moto on loopback, the aws_default connection pointing at it, EMR runner selected."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {
        "CONTRAIL_SPARK_RUNNER": "emr",
        "CONTRAIL_BUCKET": BUCKET,
        "CONTRAIL_FEATURE_SET": FEATURE_SET,
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws", "login": "x", "password": "x",
            "extra": {"endpoint_url": url, "region_name": REGION}}),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from contrail import connections

    connections.settings.cache_clear()
    yield url
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    connections.settings.cache_clear()


@pytest.fixture(scope="module")
def airflow_db():
    """A migrated metadata DB in the test session's private AIRFLOW_HOME."""
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                   check=True, capture_output=True, env=os.environ.copy())


def _features_dag():
    """The features DAG as the dags folder defines it, for the runner now in the environment."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags" / "features.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["features"]
    # Failures must be final here: a retry only re-polls the same step after a delay.
    for task in dag.tasks:
        task.retries = 0
    return dag


@pytest.fixture(scope="module")
def emr_dag(emulator, airflow_db):
    return _features_dag()


def _client(service: str, url: str):
    import boto3

    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id="x", aws_secret_access_key="x")


class RecordingGate:
    """Passes every staged build and records the days it audited (one list per gate)."""

    def __init__(self, gated: list[list[str]]):
        self.days: list[str] = []
        gated.append(self.days)

    def validate(self, df, *, suite, dataset, dt, version):
        from contrail.quality import QualityReport

        self.days.append(dt.isoformat())
        return QualityReport(dataset=dataset, dt=dt, version=version, suite=suite, passed=True,
                             row_count=len(df))

    def validate_many(self, partitions, *, suite, dataset):
        return [self.validate(df, suite=suite, dataset=dataset, dt=dt, version=v) for df, dt, v in partitions]


class StepRunner:
    """Finishes EMR steps in moto's backend, like a cluster would, when the step is polled."""

    def __init__(self, outcome: str | None):
        self.outcome = outcome  # "COMPLETED", "FAILED" or None (runs forever)
        self.polls: dict[str, int] = {}
        self.plans_run: list[str] = []

    def run_job(self, args: list[str]) -> None:
        """What the Spark job stages: a part and a staged manifest per target of its plan."""
        self._run_job(args)

    def observe(self, step) -> None:
        self.polls[step.id] = self.polls.get(step.id, 0) + 1
        if self.outcome is None or step.state != "RUNNING" or self.polls[step.id] < 2:
            return
        if self.outcome == "COMPLETED":
            self._run_job(step.args)
        step.state = self.outcome

    def _run_job(self, args: list[str]) -> None:
        """What the Spark job stages: a part and a staged manifest per target, where its plan says."""
        import io

        import pandas as pd

        from moto.s3.models import s3_backends

        s3 = s3_backends[ACCOUNT]["aws"]
        plan_uri = args[args.index("--plan") + 1]
        bucket, key = plan_uri.removeprefix("s3://").split("/", 1)
        plan = json.loads(s3.get_object(bucket, key).value)
        self.plans_run.append(plan_uri)
        for dt in plan["targets"]:
            out = plan["outputs"][dt]
            buf = io.BytesIO()
            pd.DataFrame({"dt": [dt]}).to_parquet(buf, index=False)
            part = out["prefix"] + "part-00000.snappy.parquet"
            s3.put_object(bucket, part, buf.getvalue())
            manifest = {"dt": dt, "rows": 900, "job_version": plan["job_version"], "parts": [part],
                        "inputs": {ds: {d: {"version": e["version"]} for d, e in days.items()}
                                   for ds, days in plan["inputs"].items()}}
            s3.put_object(bucket, out["manifest"], json.dumps(manifest).encode())


@pytest.fixture
def lake(emulator, monkeypatch):
    """Fresh emulator state with two validated days; captured EMR calls; a step runner to arm."""
    import botocore.client
    import requests
    from moto.emr.models import ElasticMapReduceBackend

    requests.post(f"{emulator}/moto-api/reset", timeout=10).raise_for_status()
    s3, emr = _client("s3", emulator), _client("emr", emulator)
    s3.create_bucket(Bucket=BUCKET)
    # the stand-in job stages one-column parts, not real features: the online store's refresh
    # (tested on real features in test_online_store.py and the e2e suite) is left out here
    monkeypatch.setattr("contrail.online_store.refresh", lambda *_a, **_k: {"asof_days": 0, "items": 0})

    calls: list[tuple[str, dict]] = []
    make_api_call = botocore.client.BaseClient._make_api_call

    def capture(self, operation_name, api_params):
        if operation_name in CAPTURED_OPERATIONS:
            calls.append((operation_name, copy.deepcopy(api_params)))
        return make_api_call(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", capture)

    # the features GX gate runs on real Spark output in the local e2e; the fake step below
    # stages a one-column part, so a recording gate stands in for GX here
    gated: list[list[str]] = []
    monkeypatch.setattr("contrail.quality.QualityGate", lambda: RecordingGate(gated))

    runner = StepRunner(outcome=None)
    describe_step = ElasticMapReduceBackend.describe_step

    def describe_and_advance(self, cluster_id, step_id):
        step = describe_step(self, cluster_id, step_id)
        if step is not None:
            runner.observe(step)
        return step

    monkeypatch.setattr(ElasticMapReduceBackend, "describe_step", describe_and_advance)

    def seed_validated(days=DAYS):
        for ds in ("flights", "weather"):
            for dt in days:
                prefix = f"landing/{ds}/dt={dt}/v=0001/"
                pointer = {"dt": dt, "version": 1, "manifest_uri": f"s3://{BUCKET}/{prefix}_manifest.json",
                           "objects": [prefix + f"{ds}.csv.gz"]}
                s3.put_object(Bucket=BUCKET, Key=f"validated/{ds}/dt={dt}/_pointer.json",
                              Body=json.dumps(pointer).encode())

    return {"s3": s3, "emr": emr, "calls": calls, "runner": runner, "seed": seed_validated, "url": emulator,
            "gated": gated}


def _run(dag):
    dr = dag.test()
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    return dr, states


def _payloads(calls, operation):
    return [params for name, params in calls if name == operation]


def _cluster_state(lake, cluster_id):
    return lake["emr"].describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]


def _only_cluster(lake):
    (run_job_flow,) = _payloads(lake["calls"], "RunJobFlow")
    (cluster,) = lake["emr"].list_clusters()["Clusters"]
    return run_job_flow, cluster["Id"]


def _leak_policy():
    """The lead's DAG policy check, loaded by path (``tests`` is not a package)."""
    import importlib.util

    path = REPO / "tests" / "test_dag_policy.py"
    spec = importlib.util.spec_from_file_location("_contrail_dag_policy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.leaked_cluster_violations


def test_emr_dag_shape_cannot_leak_a_cluster(emr_dag):
    assert _leak_policy()(emr_dag) == []
    assert str(emr_dag.task_dict["terminate_cluster"].trigger_rule) in ("all_done", "TriggerRule.ALL_DONE")
    assert emr_dag.task_dict["wait_for_step"].deferrable is True


def test_success_publishes_and_terminates(emr_dag, lake):
    from contrail_spark.package import artifact_bytes

    lake["seed"]()
    lake["runner"].outcome = "COMPLETED"
    dr, states = _run(emr_dag)

    assert str(dr.state) == "success", states
    assert states == {"plan": "success", "upload_entry": "success", "create_cluster": "success",
                      "add_steps": "success", "wait_for_step": "success",
                      "terminate_cluster": "success", "publish": "success"}
    run_job_flow, cluster_id = _only_cluster(lake)
    assert _cluster_state(lake, cluster_id) == "TERMINATED"
    assert _payloads(lake["calls"], "TerminateJobFlows") == [{"JobFlowIds": [cluster_id]}]
    assert lake["runner"].polls and min(lake["runner"].polls.values()) >= 2  # the trigger polled

    # RunJobFlow: the committed config, for this bucket and this run
    committed = json.loads((REPO / "plugins/contrail/config/emr_job_flow.json").read_text())
    assert run_job_flow["ReleaseLabel"] == committed["ReleaseLabel"]
    assert run_job_flow["LogUri"] == f"s3://{BUCKET}/logs/emr/"
    assert run_job_flow["SecurityConfiguration"] == committed["SecurityConfiguration"]
    assert run_job_flow["AutoTerminationPolicy"] == {"IdleTimeout": 900}
    assert run_job_flow["Instances"]["TerminationProtected"] is False
    fleets = {f["InstanceFleetType"]: f for f in run_job_flow["Instances"]["InstanceFleets"]}
    assert fleets["CORE"]["TargetOnDemandCapacity"] >= 1 and not fleets["CORE"].get("TargetSpotCapacity")
    assert fleets["TASK"]["TargetSpotCapacity"] >= 1 and not fleets["TASK"].get("TargetOnDemandCapacity")
    assert fleets["TASK"]["LaunchSpecifications"]["SpotSpecification"]
    tags = {t["Key"]: t["Value"] for t in run_job_flow["Tags"]}
    assert tags["project"] == "contrail" and tags["airflow-run-id"] == dr.run_id
    assert run_job_flow["Name"] == f"contrail-features-{dr.run_id}"

    # AddJobFlowSteps: spark-submit on the content-hashed artifact, entry and plan just written
    (add_steps,) = _payloads(lake["calls"], "AddJobFlowSteps")
    assert add_steps["JobFlowId"] == cluster_id
    (step,) = add_steps["Steps"]
    args = step["HadoopJarStep"]["Args"]
    artifact_sha = hashlib.sha256(artifact_bytes()).hexdigest()[:12]
    entry_body = (REPO / "spark_jobs" / "main.py").read_bytes()
    entry_sha = hashlib.sha256(entry_body).hexdigest()[:12]
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    artifacts = f"s3://{BUCKET}/artifacts/spark/"
    assert args[args.index("--py-files") + 1] == f"{artifacts}contrail_spark-{artifact_sha}.zip"
    assert args[args.index("--py-files") + 2] == f"{artifacts}main-{entry_sha}.py"
    plan_uri = args[args.index("--plan") + 1]
    assert plan_uri.startswith(f"s3://{BUCKET}/artifacts/plans/{FEATURE_SET}/") and plan_uri.endswith(".json")
    assert lake["runner"].plans_run == [plan_uri]
    s3 = lake["s3"]
    def body(key):
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    assert body(f"artifacts/spark/main-{entry_sha}.py") == entry_body
    assert body(f"artifacts/spark/contrail_spark-{artifact_sha}.zip") == artifact_bytes()
    plan = json.loads(s3.get_object(Bucket=BUCKET, Key=plan_uri.split("/", 3)[3])["Body"].read())
    assert lake["gated"] == [list(DAYS)]  # the staged builds went through the features gate
    from contrail import catalog

    published = catalog.published(s3, BUCKET, catalog.features_zone(FEATURE_SET))
    assert sorted(d.isoformat() for d in published) == list(DAYS)  # and only then were published
    assert {p.manifest["build"] for p in published.values()} == {plan["outputs"][DAYS[0]]["build"]}
    assert plan["targets"] == list(DAYS) and plan["job_version"] == artifact_sha

    # publish: the asset event carries the built dates and where the step's logs are
    extra = _asset_event_extra(dr)
    step_id = _step_id(lake, cluster_id)
    assert extra["dates"] == list(DAYS) and extra["rows"] == {d: 900 for d in DAYS}
    assert extra["plan_uri"] == plan_uri and extra["cluster_id"] == cluster_id and extra["runner"] == "emr"
    assert extra["step_log_uri"] == f"s3://{BUCKET}/logs/emr/{cluster_id}/steps/{step_id}/"


def _step_id(lake, cluster_id):
    (step,) = lake["emr"].list_steps(ClusterId=cluster_id)["Steps"]
    return step["Id"]


def _asset_event_extra(dr):
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == f"features_{FEATURE_SET}", AssetEvent.source_run_id == dr.run_id)
        ).all()
        assert len(events) == 1
        return dict(events[0].extra)


def _assert_failed_and_terminated(lake, dr, states) -> str:
    """The run failed at the wait, the all_done terminate still ran and took the only cluster
    down, and nothing was published; returns the cluster id."""
    assert str(dr.state) == "failed", states
    assert states["wait_for_step"] == "failed"
    assert states["terminate_cluster"] == "success"
    assert states["publish"] == "upstream_failed"
    _, cluster_id = _only_cluster(lake)
    assert _cluster_state(lake, cluster_id) == "TERMINATED"
    assert _payloads(lake["calls"], "TerminateJobFlows") == [{"JobFlowIds": [cluster_id]}]
    assert not lake["s3"].list_objects_v2(Bucket=BUCKET, Prefix=f"features/{FEATURE_SET}/").get("Contents")
    return cluster_id


def test_step_failure_terminates_and_fails_the_run(emr_dag, lake):
    lake["seed"]()
    lake["runner"].outcome = "FAILED"
    dr, states = _run(emr_dag)

    _assert_failed_and_terminated(lake, dr, states)


def test_step_wait_timeout_terminates_and_fails_the_run(emr_dag, lake, monkeypatch):
    lake["seed"]()
    lake["runner"].outcome = None  # the step runs forever
    sensor = emr_dag.task_dict["wait_for_step"]
    monkeypatch.setattr(sensor, "poke_interval", 1)
    monkeypatch.setattr(sensor, "max_attempts", 2)
    dr, states = _run(emr_dag)

    cluster_id = _assert_failed_and_terminated(lake, dr, states)
    step_id = _step_id(lake, cluster_id)
    assert lake["runner"].polls[step_id] == 3  # one poke, then the trigger's two attempts


class WaitKilled(Exception):
    """Stands in for the kill of a deferred task in ``dag.test`` (see the test below)."""


def test_step_wait_killed_terminates_and_fails_the_run(emr_dag, lake, monkeypatch):
    """The deferred wait is killed (a person marks it failed, or its worker dies) while the
    step still runs: the run fails, and the all_done terminate still takes the cluster down."""
    from airflow.sdk.definitions import dag as dag_module

    lake["seed"]()
    lake["runner"].outcome = None  # the step runs forever
    killed: list[str] = []
    run_inline_trigger = dag_module._run_inline_trigger

    def kill_instead_of_waiting(trigger, task_sdk_ti):
        if task_sdk_ti.task_id != "wait_for_step":  # the terminate operator defers too
            return run_inline_trigger(trigger, task_sdk_ti)
        # what the triggerer would have polled: the step is still RUNNING when the kill lands
        assert lake["runner"].polls and all(n == 1 for n in lake["runner"].polls.values())
        killed.append(task_sdk_ti.task_id)
        # dag.test marks a task FAILED when its inline trigger raises, which is the state a
        # kill leaves behind (the SDK's own AirflowTaskTerminated is a BaseException it re-raises)
        raise WaitKilled(f"{task_sdk_ti.task_id} killed while deferred")

    monkeypatch.setattr(dag_module, "_run_inline_trigger", kill_instead_of_waiting)
    dr, states = _run(emr_dag)

    assert killed == ["wait_for_step"]
    _assert_failed_and_terminated(lake, dr, states)


def test_nothing_pending_skips_without_a_cluster(emr_dag, lake):
    dr, states = _run(emr_dag)  # no validated partition: nothing to build

    assert str(dr.state) == "success", states
    assert set(states.values()) == {"skipped"}, states
    assert lake["calls"] == []
    assert lake["emr"].list_clusters()["Clusters"] == []


def test_emr_serverless_runs_the_job_and_publishes(lake, airflow_db, monkeypatch):
    """EMR Serverless: moto's job runs end SUCCESS at once; a wrapper "runs" the job on start."""
    from moto.emrserverless.models import EMRServerlessBackend

    from contrail_spark.package import artifact_bytes

    app_id = _client("emr-serverless", lake["url"]).create_application(
        name="contrail", releaseLabel="emr-7.9.0", type="SPARK")["applicationId"]
    role = f"arn:aws:iam::{ACCOUNT}:role/contrail-emr-serverless"
    monkeypatch.setenv("CONTRAIL_SPARK_RUNNER", "emr_serverless")
    monkeypatch.setenv("CONTRAIL_EMR_SERVERLESS_APP_ID", app_id)
    monkeypatch.setenv("CONTRAIL_EMR_SERVERLESS_ROLE_ARN", role)
    start_job_run = EMRServerlessBackend.start_job_run

    def start_and_run(self, *args, **kwargs):
        job_run = start_job_run(self, *args, **kwargs)
        lake["runner"].run_job(kwargs["job_driver"]["sparkSubmit"]["entryPointArguments"])
        return job_run

    monkeypatch.setattr(EMRServerlessBackend, "start_job_run", start_and_run)
    lake["seed"]()
    dag = _features_dag()
    dr, states = _run(dag)

    assert str(dr.state) == "success", states
    assert states == {"plan": "success", "upload_entry": "success", "run_job": "success",
                      "publish": "success"}
    (start,) = _payloads(lake["calls"], "StartJobRun")
    committed = json.loads((REPO / "plugins/contrail/config/emr_serverless_job.json").read_text())
    assert start["applicationId"] == app_id and start["executionRoleArn"] == role
    assert start["name"] == committed["name"] and start["tags"] == committed["tags"]
    assert start["executionTimeoutMinutes"] == committed["executionTimeoutMinutes"]
    driver = start["jobDriver"]["sparkSubmit"]
    entry_sha = hashlib.sha256((REPO / "spark_jobs" / "main.py").read_bytes()).hexdigest()[:12]
    assert driver["entryPoint"] == f"s3://{BUCKET}/artifacts/spark/main-{entry_sha}.py"
    (plan_uri,) = lake["runner"].plans_run
    assert driver["entryPointArguments"] == ["--plan", plan_uri, "--io", "s3"]
    artifact_sha = hashlib.sha256(artifact_bytes()).hexdigest()[:12]
    assert driver["sparkSubmitParameters"].startswith(
        f"--py-files s3://{BUCKET}/artifacts/spark/contrail_spark-{artifact_sha}.zip ")
    assert start["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"] == {
        "logUri": f"s3://{BUCKET}/logs/emr-serverless/"}
    extra = _asset_event_extra(dr)
    assert extra["dates"] == list(DAYS) and extra["runner"] == "emr_serverless" and extra["job_run_id"]
