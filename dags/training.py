"""
### Training — MLflow-tracked model training and registry (`training`)

Weekly, and on demand with params. Reads published feature partitions for a trailing
window, splits train / validation / test by date (never shuffling across time), fits a
gradient-boosted classifier, logs params, metrics, plots, signature, dataset inputs and
lineage tags to MLflow, registers a new model version and applies the promotion rule:
`champion` moves only when the challenger beats it on the same test window by the margin
and the quality gates passed; otherwise the version becomes `challenger`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param, task

from contrail import assets
from contrail.dag_defaults import DEFAULT_ARGS, TAGS

with DAG(
    dag_id="training",
    schedule="@weekly",
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "training", "mlflow"],
    doc_md=__doc__,
    params={
        "window_days": Param(90, type="integer", minimum=2, description="trailing days of features"),
        "window_end": Param(None, type=["null", "string"], description="last dt (default: latest)"),
        "test_days": Param(14, type="integer", minimum=1),
        "valid_days": Param(7, type="integer", minimum=1),
        "model_type": Param("hist_gradient_boosting", enum=["hist_gradient_boosting"]),
        "promotion_margin": Param(0.002, type="number", minimum=0),
    },
) as dag:

    @task(outlets=[assets.model()])
    def train(**context) -> dict:
        from contrail.stages.training import train_task

        return train_task(context)

    train()
