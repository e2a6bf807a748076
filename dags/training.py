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

A scheduled or backfilled run trains on its own data interval: without `window_end`, the
window ends the day before the interval ends, so `airflow backfill create --dag-id training`
over eight weeks trains eight distinct windows. A manual run (the trigger form, the API,
monitoring's retrain) trains on the latest published features. `to_date` also ends the window
when given.

`mode=backtest` with `from_date`/`to_date` is a walk-forward backtest: one model per week of
the range (`backtest_week_days`), each trained on the `window_days` before its week (the last
`valid_days` choose its threshold) and tested on the week; each week is a nested child run of
one parent MLflow run (experiment `contrail-backtest`) holding the weekly test-AUC table, the
mean and a plot. A backtest registers and promotes nothing and emits no model event.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param, task

from contrail import assets
from contrail import families
from contrail.dag_defaults import DEFAULT_ARGS, TAGS, rerun_params

TRAIN, BACKTEST = "train", "backtest"
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
    # a training run always fits anew: the re-run contract's range and reason, not its rebuild mode
    params={k: v for k, v in rerun_params(
        mode=Param(TRAIN, enum=[TRAIN, BACKTEST], title="Mode",
                   description="train: fit, register, promote; backtest: one model per week of "
                               "from_date..to_date, logged to MLflow only"),
        backtest_week_days=Param(7, type="integer", minimum=1, description="days per backtest fold"),
    ).items() if k != "rebuild"} | {
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
    },
) as dag:

    @task.branch
    def choose_mode(**context) -> str:
        return BACKTEST if context["params"].get("mode") == BACKTEST else TRAIN

    @task(task_id=TRAIN, outlets=[assets.model()])
    def train(**context) -> dict:
        from contrail.stages.training import train_task

        return train_task(context)

    @task(task_id=BACKTEST)
    def backtest(**context) -> dict:
        from contrail.stages.training import backtest_task

        return backtest_task(context)

    choose_mode() >> [train(), backtest()]
