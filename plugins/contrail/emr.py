"""The feature stage on EMR: request payloads, log locations and the cluster-leak guards.

Pure builders (:func:`job_flow_overrides`, :func:`check_job_flow`, :func:`add_steps_payload`,
:func:`serverless_job`, :func:`step_log_uri`, :func:`entry_key`) plus three small edges the
``features`` DAG calls inside its tasks (:func:`upload_entry`,
:func:`skip_without_cluster`). Nothing here touches the network at import: the DAG calls
the builders at parse time.

A transient cluster is stopped by three independent things, so none of them alone has to be
perfect: the DAG's ``EmrTerminateJobFlowOperator`` (``trigger_rule="all_done"``, so it runs
after a failed or timed-out step too), the cluster's own ``AutoTerminationPolicy`` (idle
timeout: covers a dead scheduler), and the create operator's ``terminate_job_flow_on_failure``
/ ``on_kill``. :func:`check_job_flow` refuses a config that would disable any of them.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from contrail import catalog
from contrail.features import (
    EMR_JOB_FLOW_CONFIG,
    EMR_SERVERLESS_JOB_CONFIG,
    ENTRY_POINT,
    emr_steps,
    load_job_flow_config,
)

if TYPE_CHECKING:
    from contrail.settings import Settings

log = logging.getLogger(__name__)

# Idle timeout bounds EMR accepts (1 minute .. 7 days); ours must be set and short.
MAX_IDLE_TIMEOUT_SECONDS = 3600
MIN_IDLE_TIMEOUT_SECONDS = 60

# Task ids the templates below refer to: the DAG and the templates must agree.
PLAN_TASK = "plan"
UPLOAD_ENTRY_TASK = "upload_entry"
CREATE_CLUSTER_TASK = "create_cluster"
ADD_STEPS_TASK = "add_steps"

# Rendered by Airflow at run time from the upstream tasks' XComs.
PLAN_XCOM = "{{{{ ti.xcom_pull(task_ids='" + PLAN_TASK + "')['{field}'] }}}}"
ENTRY_URI_XCOM = "{{ ti.xcom_pull(task_ids='" + UPLOAD_ENTRY_TASK + "') }}"
# ``or ''`` so a skipped or failed create renders as empty, not the string "None".
CLUSTER_ID_XCOM = "{{ ti.xcom_pull(task_ids='" + CREATE_CLUSTER_TASK + "') or '' }}"
LAST_STEP_ID_XCOM = "{{ (ti.xcom_pull(task_ids='" + ADD_STEPS_TASK + "') or [''])[-1] }}"


def plan_field(field: str) -> str:
    """Jinja for one field of the plan task's XCom (``plan_uri``, ``artifact_uri``, …)."""
    return PLAN_XCOM.format(field=field)


# ---------------------------------------------------------------------------- EMR on EC2

def check_job_flow(config: Mapping[str, Any], *, bucket: str) -> list[str]:
    """Why this ``run_job_flow`` request could leak a cluster or lose its logs (pure; [] = fine).

    Checked: termination protection off (or the terminate task cannot stop it), an idle
    auto-termination timeout, logs under ``s3://<bucket>/logs/emr/``, a release label, an
    on-demand core fleet and a spot-only task fleet.
    """
    problems = []
    instances = config.get("Instances", {})
    if instances.get("TerminationProtected", False):
        problems.append("Instances.TerminationProtected is true: the terminate task could not stop it")
    idle = (config.get("AutoTerminationPolicy") or {}).get("IdleTimeout")
    if not isinstance(idle, int) or not MIN_IDLE_TIMEOUT_SECONDS <= idle <= MAX_IDLE_TIMEOUT_SECONDS:
        problems.append(f"AutoTerminationPolicy.IdleTimeout must be {MIN_IDLE_TIMEOUT_SECONDS}.."
                        f"{MAX_IDLE_TIMEOUT_SECONDS} s, got {idle!r}")
    if config.get("LogUri") != catalog.emr_log_uri(bucket):
        problems.append(f"LogUri must be {catalog.emr_log_uri(bucket)}, got {config.get('LogUri')!r}")
    if not str(config.get("ReleaseLabel", "")).startswith("emr-"):
        problems.append(f"ReleaseLabel missing or not emr-*: {config.get('ReleaseLabel')!r}")
    fleets = {f.get("InstanceFleetType"): f for f in instances.get("InstanceFleets", [])}
    core, task = fleets.get("CORE", {}), fleets.get("TASK", {})
    if not core.get("TargetOnDemandCapacity") or core.get("TargetSpotCapacity"):
        problems.append("the CORE fleet must be on-demand only (HDFS and the driver live there)")
    if task and (not task.get("TargetSpotCapacity") or task.get("TargetOnDemandCapacity")):
        problems.append("the TASK fleet must be spot only")
    return problems


def job_flow_overrides(settings: "Settings", *, run_id: str,
                       config_path: Path | str = EMR_JOB_FLOW_CONFIG) -> dict[str, Any]:
    """``run_job_flow`` arguments: the committed config for ``settings.bucket``, named and tagged
    for the run (``run_id`` may be the Jinja ``{{ run_id }}``). Raises ``ValueError`` if the
    config fails :func:`check_job_flow`, so a leaky cluster is refused at DAG parse time.
    """
    config = load_job_flow_config(config_path, bucket=settings.bucket)
    problems = check_job_flow(config, bucket=settings.bucket)
    if problems:
        raise ValueError(f"{config_path}: " + "; ".join(problems))
    config["Name"] = f"{config['Name']}-{run_id}"
    run_tags = {"airflow-dag-id": "features", "airflow-run-id": run_id}
    config["Tags"] = [t for t in config.get("Tags", []) if t["Key"] not in run_tags] + [
        {"Key": key, "Value": value} for key, value in run_tags.items()
    ]
    return config


def add_steps_payload() -> list[dict[str, Any]]:
    """The ``add_job_flow_steps`` steps, templated on the plan and entry XComs (rendered at run)."""
    return emr_steps(plan_field("artifact_uri"), ENTRY_URI_XCOM, plan_field("plan_uri"))


def step_log_uri(bucket: str, cluster_id: str, step_id: str) -> str:
    """Where EMR writes one step's stdout / stderr / controller logs."""
    return catalog.emr_step_log_uri(bucket, cluster_id, step_id)


def skip_without_cluster(context: Mapping[str, Any]) -> None:
    """``pre_execute`` of the terminate task: skip when no cluster was created.

    The terminate task runs on ``all_done``, so it also runs when ``plan`` found nothing (every
    upstream skipped) or the create call failed; then there is nothing to stop.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    if not context["task"].job_flow_id:
        raise AirflowSkipException("no EMR cluster was created in this run")


def log_step_location(context: Mapping[str, Any]) -> None:
    """``pre_execute`` of the step sensor: put the step's S3 log location in the task log."""
    task = context["task"]
    from contrail.settings import load_settings

    log.info("EMR step logs: %s", step_log_uri(load_settings().bucket, task.job_flow_id, task.step_id))


# ---------------------------------------------------------------------------- EMR Serverless

def serverless_job(settings: "Settings", *, config_path: Path | str = EMR_SERVERLESS_JOB_CONFIG,
                   artifact_uri: str | None = None, entry_uri: str | None = None,
                   plan_uri: str | None = None) -> dict[str, Any]:
    """``start_job_run`` body (``name``, ``jobDriver``, ``configurationOverrides``, ``tags``, …)
    from the committed config. URIs default to the Jinja reading the plan / entry XComs."""
    return load_job_flow_config(
        config_path,
        bucket=settings.bucket,
        artifact_uri=artifact_uri or plan_field("artifact_uri"),
        entry_uri=entry_uri or ENTRY_URI_XCOM,
        plan_uri=plan_uri or plan_field("plan_uri"),
    )


def serverless_job_driver(settings: "Settings", **uris: str) -> dict[str, Any]:
    """Just the ``jobDriver`` of :func:`serverless_job`."""
    return serverless_job(settings, **uris)["jobDriver"]


def serverless_ids(environ: Mapping[str, str]) -> tuple[str, str]:
    """EMR Serverless application id and job role ARN: the env vars when set (read at parse,
    no network), else Jinja reading Airflow Variables at run time."""
    app = environ.get("CONTRAIL_EMR_SERVERLESS_APP_ID") or "{{ var.value.contrail_emr_serverless_app_id }}"
    role = (environ.get("CONTRAIL_EMR_SERVERLESS_ROLE_ARN")
            or "{{ var.value.contrail_emr_serverless_role_arn }}")
    return app, role


# ---------------------------------------------------------------------------- task edges

def entry_key(body: bytes) -> str:
    """``artifacts/spark/main-<sha256[:12]>.py``: the entry file, named by its content."""
    return catalog.emr_entry_key(hashlib.sha256(body).hexdigest())


def upload_entry(client: Any, bucket: str, path: Path | str = ENTRY_POINT) -> str:
    """Upload the spark-submit entry file unless already there (idempotent); its ``s3://`` URI."""
    from contrail import lake

    body = Path(path).read_bytes()
    key = entry_key(body)
    if not lake.exists(client, bucket, key):
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return lake.s3_uri(bucket, key)


def step_ids(value: Sequence[str] | str | None) -> list[str]:
    """The add-steps XCom as a list (it is a list of step ids; tolerate one id)."""
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)
