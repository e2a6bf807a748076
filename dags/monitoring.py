"""
### Monitoring — how the champion does once outcomes land (`monitoring`)

Scheduled on landed flights *and* new predictions: each drop carries the day's `arr_delay`, the
outcome of every prediction made for it, and a run waits until the day is also scored (a
catch-up with no champion yet starts no run; a year of landed days is judged in one). Joins each day's predictions (batch `predictions/<model>/dt=…` and
stream) to those outcomes and publishes `monitoring/<model>/dt=…/`: per model version, source
and day, ROC AUC, Brier, calibration error (ECE), observed and predicted positive rate, and the
largest PSI of the main features against the training window. The series goes to MLflow (a
`contrail-monitoring` run per model version, linked from the version's
`contrail.monitoring_run_id` tag). When the champion degraded — daily ROC AUC below
`auc_floor` for `auc_days` judged days in a row, or a feature's PSI above `psi_limit` on the
latest day (days with fewer than `min_rows` outcomes are not judged) — `training` is triggered
with the reason in its conf, once per champion version (its `contrail.retrain_requested` tag).
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task

from contrail import assets
from contrail.dag_defaults import DEFAULT_ARGS, TAGS

with DAG(
    dag_id="monitoring",
    schedule=assets.landing("flights") & assets.predictions(),
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "monitoring", "mlflow"],
    doc_md=__doc__,
    params={
        "auc_floor": Param(0.62, type="number", minimum=0, maximum=1),
        "auc_days": Param(3, type="integer", minimum=1),
        "psi_limit": Param(0.2, type="number", exclusiveMinimum=0),
        "min_rows": Param(100, type="integer", minimum=1),
    },
) as dag:

    @task(outlets=[assets.monitoring()])
    def monitor(**context) -> dict:
        from contrail.stages.monitoring import monitor_task

        return monitor_task(context)

    @task.short_circuit
    def degraded(result: dict) -> bool:
        return bool(result.get("retrain"))

    retrain = TriggerDagRunOperator(
        task_id="retrain",
        trigger_dag_id="training",
        conf={"reason": "monitoring: {{ ti.xcom_pull(task_ids='monitor')['retrain'] }}"},
        wait_for_completion=False,
    )

    degraded(monitor()) >> retrain
