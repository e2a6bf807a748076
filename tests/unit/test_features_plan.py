"""The feature stage's orchestration logic: plans, launch commands, EMR payloads. No Spark, no AWS."""

from __future__ import annotations

import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest

from contrail import features


def entry(dataset: str, d: date, version: int = 1) -> dict:
    prefix = f"s3://lake/landing/{dataset}/dt={d.isoformat()}/v={version:04d}/"
    return {"version": version, "manifest": prefix + "_manifest.json",
            "objects": [prefix + f"{dataset}.csv.gz"]}


def validated_days(first: date, last: date, datasets=("flights", "weather")) -> dict:
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    return {ds: {d: entry(ds, d) for d in days} for ds in datasets}


def plan(validated, pending, **kw):
    return features.plan_features(validated, pending, feature_set="flights_v1", job_version="abc123",
                                  bucket="lake", **kw)


def test_plan_targets_pending_days_with_flights_lookback():
    validated = validated_days(date(2013, 1, 1), date(2013, 3, 31))
    got = plan(validated, [date(2013, 3, 2), date(2013, 3, 1)])
    assert got["feature_set"] == "flights_v1" and got["job_version"] == "abc123" and got["bucket"] == "lake"
    assert got["targets"] == ["2013-03-01", "2013-03-02"]
    assert got["lookback_days"] == {"flights": 28, "weather": 0}
    flights_days = sorted(got["inputs"]["flights"])
    assert flights_days[0] == "2013-02-01"  # 28 days before the first target
    assert flights_days[-1] == "2013-03-02"
    assert len(flights_days) == 28 + 2
    assert sorted(got["inputs"]["weather"]) == ["2013-03-01", "2013-03-02"]
    assert got["inputs"]["flights"]["2013-02-01"] == entry("flights", date(2013, 2, 1))


def test_plan_lookback_is_where_available_and_only_around_targets():
    validated = validated_days(date(2013, 1, 1), date(2013, 12, 31))
    got = plan(validated, [date(2013, 1, 3), date(2013, 6, 1)], lookback_days=7)
    assert sorted(got["inputs"]["flights"]) == (
        ["2013-01-01", "2013-01-02", "2013-01-03"]  # the year starts on Jan 1
        + [(date(2013, 5, 25) + timedelta(days=k)).isoformat() for k in range(8)]  # no gap filling
    )


def test_plan_skips_pending_days_not_validated_for_every_dataset():
    validated = validated_days(date(2013, 1, 1), date(2013, 1, 10))
    del validated["weather"][date(2013, 1, 9)]
    got = plan(validated, [date(2013, 1, 8), date(2013, 1, 9), date(2013, 1, 20)])
    assert got["targets"] == ["2013-01-08"]
    assert plan(validated, [])["targets"] == []


def test_plan_keeps_the_validated_version():
    validated = validated_days(date(2013, 1, 1), date(2013, 1, 2))
    validated["flights"][date(2013, 1, 2)] = entry("flights", date(2013, 1, 2), version=3)
    got = plan(validated, [date(2013, 1, 2)])
    assert got["inputs"]["flights"]["2013-01-02"]["version"] == 3
    assert "/v=0003/" in got["inputs"]["flights"]["2013-01-02"]["manifest"]


def test_spark_submit_command_ships_the_artifact():
    cmd = features.spark_submit_command(
        Path("/a/contrail_spark-0123.zip"), Path("/r/main.py"), "s3://lake/p.json"
    )
    assert Path(cmd[0]).name == "spark-submit"
    assert cmd[cmd.index("--master") + 1] == "local[2]"
    assert cmd[cmd.index("--py-files") + 1] == "/a/contrail_spark-0123.zip"
    assert cmd[-5:] == ["/r/main.py", "--plan", "s3://lake/p.json", "--io", "local"]


def test_run_local_raises_with_the_stderr_tail(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, env, **kwargs):
        seen.update(cmd=cmd, env=env)
        stderr = "\n".join(f"line {i}" for i in range(100)) + "\nNoSuchKey: plan.json"
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(features.subprocess, "run", fake_run)
    with pytest.raises(features.SparkJobError) as err:
        features.run_local("s3://lake/p.json", artifact=tmp_path / "a.zip",
                           env={"AWS_ENDPOINT_URL": "http://x"})
    message = str(err.value)
    assert "exit 1" in message and "NoSuchKey: plan.json" in message
    assert "line 99" in message and "line 10\n" not in message  # a tail, not the whole log
    assert seen["env"]["AWS_ENDPOINT_URL"] == "http://x"
    assert seen["cmd"][seen["cmd"].index("--py-files") + 1] == str(tmp_path / "a.zip")


def test_emr_steps_payload():
    steps = features.emr_steps("s3://lake/artifacts/spark/contrail_spark-0123.zip",
                               "s3://lake/artifacts/spark/main.py", "s3://lake/plans/p.json")
    assert len(steps) == 1
    step = steps[0]
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    assert step["ActionOnFailure"] in ("CONTINUE", "TERMINATE_CLUSTER", "CANCEL_AND_WAIT")
    args = step["HadoopJarStep"]["Args"]
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    assert args[args.index("--py-files") + 1] == "s3://lake/artifacts/spark/contrail_spark-0123.zip"
    assert args[-5:] == [
        "s3://lake/artifacts/spark/main.py", "--plan", "s3://lake/plans/p.json", "--io", "s3",
    ]


def test_job_flow_config_is_filled_and_complete():
    config = features.load_job_flow_config(bucket="my-lake")
    assert config["ReleaseLabel"].startswith("emr-7.")
    assert config["LogUri"] == "s3://my-lake/logs/emr/"
    assert config["Applications"] == [{"Name": "Spark"}]
    assert config["SecurityConfiguration"]
    assert config["AutoTerminationPolicy"]["IdleTimeout"] > 0
    assert {t["Key"] for t in config["Tags"]} >= {"project"}
    fleets = {f["InstanceFleetType"]: f for f in config["Instances"]["InstanceFleets"]}
    assert fleets["CORE"]["TargetOnDemandCapacity"] > 0 and not fleets["CORE"].get("TargetSpotCapacity")
    assert fleets["TASK"]["TargetSpotCapacity"] > 0 and not fleets["TASK"].get("TargetOnDemandCapacity")
    assert "{bucket}" not in str(config)


def test_serverless_config_needs_every_placeholder():
    with pytest.raises(ValueError, match="plan_uri"):
        features.load_job_flow_config(features.EMR_SERVERLESS_JOB_CONFIG, bucket="lake")
    job = features.load_job_flow_config(
        features.EMR_SERVERLESS_JOB_CONFIG, bucket="lake", artifact_uri="s3://lake/a.zip",
        entry_uri="s3://lake/main.py", plan_uri="s3://lake/p.json",
    )
    submit = job["jobDriver"]["sparkSubmit"]
    assert submit["entryPoint"] == "s3://lake/main.py"
    assert submit["entryPointArguments"] == ["--plan", "s3://lake/p.json", "--io", "s3"]
    assert "--py-files s3://lake/a.zip" in submit["sparkSubmitParameters"]
