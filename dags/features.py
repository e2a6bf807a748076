"""
### Features — Spark feature build (`features`)

Scheduled when both validated assets have new events. One run plans every validated
partition still pending (new, or whose validated version changed) plus the 28-day lookback
its trailing windows need, so a year of upstream backfill starts a handful of jobs, not 365.
The job stages each day's build under `features/<set>/dt=…/b=<build>/`; the `features` gate
audits it and only a passing day is published (manifest naming the build's parts, then
`_SUCCESS`), and the `features_<set>` asset is emitted with the published dates. `CONTRAIL_SPARK_RUNNER` picks where
the job runs:

- `local`: on this machine. With the stack's Spark Connect server (`CONTRAIL_SPARK_REMOTE`, set
  by the local stack) the job runs there, on a JVM already warm; without one, a `spark-submit`
  of the content-hashed artifact. Either way the artifact is built first and must be the
  plan's `job_version`.
- `emr`: a transient cluster per run — `plan` → `upload_entry` → `create_cluster` →
  `add_steps` → `wait_for_step` (deferrable) → `terminate_cluster` (**all_done**: runs after
  a failed or timed-out step too; skips only when no cluster was created) → `publish`.
  The cluster also carries an idle auto-termination policy. Step logs are under
  `s3://<bucket>/logs/emr/<cluster>/steps/<step>/` (logged by `wait_for_step`, and in the
  asset event's extra).
- `emr_serverless`: one deferrable job run on the application from
  `CONTRAIL_EMR_SERVERLESS_APP_ID` (role `CONTRAIL_EMR_SERVERLESS_ROLE_ARN`), then `publish`.

With nothing pending, `plan` skips the run (EMR runners) and no compute is started.

Re-run over a range (trigger form, `contrail rerun features`, or `POST /api/v2/dags/features/dagRuns`
with `conf`): `from_date`/`to_date` bound the days, `rebuild` says which — `pending` (the
default), `changed` (also days built by another feature-job version or judged by another
`features` suite version), `all` (every validated day in the range). Every runner shares the
plan and the publish, so each works the same way; the `reason` is recorded in each manifest
the run publishes.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, task

from contrail import assets
from contrail.dag_defaults import DEFAULT_ARGS, TAGS, rerun_params
from contrail.settings import load_settings

SETTINGS = load_settings()
# How long one try of the sensor waits for the step before giving up (then the cluster is
# terminated). A retry waits again, so the worst case is (retries + 1) x this.
STEP_POLL_SECONDS = 60
STEP_MAX_ATTEMPTS = 120  # 2 h


def _local_build() -> None:
    @task
    def plan(**context) -> dict:
        """Write the plan JSON for every pending date; returns its URI and the targets."""
        from contrail.stages.features import plan_task

        return plan_task(context)

    # the Spark job runs where Spark is: on the scale-out profile, the worker serving this queue
    @task(outlets=[assets.features()], queue=SETTINGS.spark_queue)
    def build(planned: dict, **context) -> dict:
        """Run the Spark job on the plan (local spark-submit) and check what it published."""
        from contrail.stages.features import build_local_task

        return build_local_task(planned, context)

    build(plan())


@task(task_id="plan")
def plan_or_skip(**context) -> dict:
    """Write the plan JSON for every pending date; skip the run (no compute) when none is pending."""
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail.stages.features import plan_task

    planned = plan_task(context)
    if not planned.get("targets"):
        raise AirflowSkipException("no validated partition is pending: no cluster started")
    return planned


@task
def upload_entry() -> str:
    """Upload spark_jobs/main.py to artifacts/spark/main-<sha12>.py (idempotent); its URI."""
    from contrail import emr
    from contrail.connections import s3

    return emr.upload_entry(s3(), SETTINGS.bucket)


@task(outlets=[assets.features()])
def publish(planned: dict, cluster_id: str | None = None, step_ids: list | None = None,
            job_run_id: str | None = None, **context) -> dict:
    """Audit every staged build with the `features` gate, publish the passing days, emit the asset."""
    from contrail import emr
    from contrail.stages.features import publish_task

    run_info: dict = {"runner": SETTINGS.spark_runner}
    if cluster_id:
        step_id = emr.step_ids(step_ids)[-1]
        run_info.update(cluster_id=cluster_id, step_id=step_id,
                        step_log_uri=emr.step_log_uri(SETTINGS.bucket, cluster_id, step_id))
    if job_run_id:
        run_info["job_run_id"] = job_run_id
    return publish_task(planned, context, **run_info)


def _emr_build() -> None:
    from airflow.providers.amazon.aws.operators.emr import (
        EmrAddStepsOperator,
        EmrCreateJobFlowOperator,
        EmrTerminateJobFlowOperator,
    )
    from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor

    from contrail import emr

    aws = {"aws_conn_id": SETTINGS.aws_conn_id}
    planned = plan_or_skip()
    entry = upload_entry()
    create = EmrCreateJobFlowOperator(
        task_id=emr.CREATE_CLUSTER_TASK,
        emr_conn_id=None,  # the whole request is the committed config, not a connection's extra
        job_flow_overrides=emr.job_flow_overrides(SETTINGS, run_id="{{ run_id }}"),
        terminate_job_flow_on_failure=True,
        **aws,
    )
    add_steps = EmrAddStepsOperator(
        task_id=emr.ADD_STEPS_TASK, job_flow_id=emr.CLUSTER_ID_XCOM, steps=emr.add_steps_payload(), **aws,
    )
    wait_for_step = EmrStepSensor(
        task_id="wait_for_step",
        job_flow_id=emr.CLUSTER_ID_XCOM,
        step_id=emr.LAST_STEP_ID_XCOM,
        deferrable=True,
        poke_interval=STEP_POLL_SECONDS,
        max_attempts=STEP_MAX_ATTEMPTS,
        pre_execute=emr.log_step_location,
        **aws,
    )
    terminate = EmrTerminateJobFlowOperator(
        task_id="terminate_cluster",
        job_flow_id=emr.CLUSTER_ID_XCOM,
        trigger_rule="all_done",
        pre_execute=emr.skip_without_cluster,
        deferrable=True,  # wait for TERMINATED, so a stuck termination fails loudly
        waiter_delay=30,
        waiter_max_attempts=40,
        **aws,
    )
    published = publish(planned, cluster_id=create.output, step_ids=add_steps.output)

    planned >> entry >> create >> add_steps >> wait_for_step >> terminate
    create >> terminate
    [wait_for_step, terminate] >> published


def _emr_serverless_build() -> None:
    import os

    from airflow.providers.amazon.aws.operators.emr import EmrServerlessStartJobOperator

    from contrail import emr

    job = emr.serverless_job(SETTINGS)
    application_id, role_arn = emr.serverless_ids(os.environ)
    planned = plan_or_skip()
    entry = upload_entry()
    run_job = EmrServerlessStartJobOperator(
        task_id="run_job",
        application_id=application_id,
        execution_role_arn=role_arn,
        name=job["name"],
        job_driver=job["jobDriver"],
        configuration_overrides=job["configurationOverrides"],
        config={"tags": job["tags"], "executionTimeoutMinutes": job["executionTimeoutMinutes"]},
        deferrable=True,
        aws_conn_id=SETTINGS.aws_conn_id,
    )
    planned >> entry >> run_job >> publish(planned, job_run_id=run_job.output)


# the tasks that run the job, per CONTRAIL_SPARK_RUNNER
BUILDS = {"local": _local_build, "emr": _emr_build, "emr_serverless": _emr_serverless_build}

with DAG(
    dag_id="features",
    schedule=assets.validated("flights") & assets.validated("weather"),
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "features", "spark"],
    doc_md=__doc__,
    params=rerun_params(),
) as dag:
    BUILDS[SETTINGS.spark_runner]()
