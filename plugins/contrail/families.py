"""The model families training offers and their hyper-parameters with defaults.

Kept apart from :mod:`contrail.training` (which imports scikit-learn) so the training DAG can
build its Params from these defaults without importing a model library at parse time.
"""

from __future__ import annotations

from typing import Any, Mapping

HIST_GRADIENT_BOOSTING = "hist_gradient_boosting"
LOGISTIC_REGRESSION = "logistic_regression"

# The hyper-parameters each model family accepts, with their defaults. The training DAG
# exposes each as an Airflow Param named ``<family prefix><name>`` (see :func:`family_params`).
PARAMS_BY_TYPE: dict[str, dict[str, Any]] = {
    HIST_GRADIENT_BOOSTING: {
        "learning_rate": 0.08,
        "max_iter": 400,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 40,
        "l2_regularization": 1.0,
        "n_iter_no_change": 20,
        "random_state": 13,
    },
    LOGISTIC_REGRESSION: {
        "C": 1.0,            # inverse L2 strength on standardised inputs and one-hot codes
        "max_iter": 1000,
        "min_frequency": 20,  # categories rarer than this in training share one column
    },
}
MODEL_TYPES: tuple[str, ...] = tuple(PARAMS_BY_TYPE)
PARAM_PREFIX: dict[str, str] = {HIST_GRADIENT_BOOSTING: "hgb_", LOGISTIC_REGRESSION: "lr_"}


def family_params(model_type: str, flat: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of ``model_type`` out of a flat mapping of prefixed names (the
    DAG's params: ``hgb_learning_rate``, ``lr_C``, …); other families' names are ignored (pure)."""
    if model_type not in PARAMS_BY_TYPE:
        raise ValueError(f"unknown model_type {model_type!r}; choose one of {list(MODEL_TYPES)}")
    prefix = PARAM_PREFIX[model_type]
    return {name: flat[prefix + name] for name in PARAMS_BY_TYPE[model_type] if flat.get(prefix + name) is not None}


def effective_params(model_type: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults of the family overlaid with ``params``; unknown names are an error (pure)."""
    if model_type not in PARAMS_BY_TYPE:
        raise ValueError(f"unknown model_type {model_type!r}; choose one of {list(MODEL_TYPES)}")
    unknown = set(params) - set(PARAMS_BY_TYPE[model_type])
    if unknown:
        raise ValueError(f"unknown {model_type} params: {sorted(unknown)}")
    return {**PARAMS_BY_TYPE[model_type], **params}
