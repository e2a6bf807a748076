"""
### Training — MLflow-tracked model training and registry (`training`)

Weekly, on demand with params, and when `monitoring` finds the champion degraded (its
conf carries `reason`). Reads published feature partitions for a trailing window, splits
train / validation / test by date (never shuffling across time), fits the chosen model
family (`model_type`: histogram gradient boosting, or the logistic-regression baseline; each
family's hyper-parameters are the `hgb_*` / `lr_*` params), chooses the decision threshold on
the validation window (best F1, or the least `false alarms + threshold_cost_ratio × missed
delays`), logs params, metrics, plots, signature, dataset inputs, the feature profile and
lineage tags to MLflow, registers a new model version (threshold on its `contrail.threshold`
tag) and applies the promotion rule: `champion` moves only when the challenger beats it on
the same test window by the margin and the quality gates passed; otherwise the version
becomes `challenger`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param, task

from contrail import assets
from contrail import families
from contrail.dag_defaults import DEFAULT_ARGS, TAGS

HGB = families.PARAMS_BY_TYPE[families.HIST_GRADIENT_BOOSTING]
LR = families.PARAMS_BY_TYPE[families.LOGISTIC_REGRESSION]

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
        "model_type": Param(families.HIST_GRADIENT_BOOSTING, enum=list(families.MODEL_TYPES)),
        "threshold_cost_ratio": Param(None, type=["null", "number"], exclusiveMinimum=0,
                                      description="null: threshold with the best validation F1; r: the one "
                                                  "minimising false alarms + r x missed delays"),
        "hgb_learning_rate": Param(HGB["learning_rate"], type="number", exclusiveMinimum=0, maximum=1),
        "hgb_max_iter": Param(HGB["max_iter"], type="integer", minimum=1),
        "hgb_max_leaf_nodes": Param(HGB["max_leaf_nodes"], type="integer", minimum=2),
        "hgb_min_samples_leaf": Param(HGB["min_samples_leaf"], type="integer", minimum=1),
        "hgb_l2_regularization": Param(HGB["l2_regularization"], type="number", minimum=0),
        "hgb_n_iter_no_change": Param(HGB["n_iter_no_change"], type="integer", minimum=1),
        "hgb_random_state": Param(HGB["random_state"], type="integer", minimum=0),
        "lr_C": Param(LR["C"], type="number", exclusiveMinimum=0, description="inverse L2 strength"),
        "lr_max_iter": Param(LR["max_iter"], type="integer", minimum=10),
        "lr_min_frequency": Param(LR["min_frequency"], type="integer", minimum=1,
                                  description="rarer categories share one one-hot column"),
        "promotion_margin": Param(0.002, type="number", minimum=0),
        "reason": Param(None, type=["null", "string"], description="why this run (monitoring sets it)"),
    },
) as dag:

    @task(outlets=[assets.model()])
    def train(**context) -> dict:
        from contrail.stages.training import train_task

        return train_task(context)

    train()
