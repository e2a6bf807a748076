"""Training: turn feature partitions into a delay classifier and measure it.

Consumes feature frames (one row per flight, the ``features/<set>/dt=…`` contract: see
:data:`FEATURES`, plus ``flight_id``, ``dt``, ``label`` and ``label_status``) and produces a
fitted scikit-learn pipeline, metrics as ``dict[str, float]`` and matplotlib figures.
Everything here is pure: no MLflow, no I/O. :mod:`contrail.registry` logs what this returns.

Only flights that arrived carry a label; cancelled and diverted flights (``label`` null) are
dropped before fitting and before measuring, never imputed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from contrail.families import (  # noqa: F401  (re-exported: the families are part of this API)
    HIST_GRADIENT_BOOSTING,
    LOGISTIC_REGRESSION,
    MODEL_TYPES,
    PARAM_PREFIX,
    PARAMS_BY_TYPE,
    effective_params,
    family_params,
)

CATEGORICAL_FEATURES: tuple[str, ...] = ("origin", "dest", "carrier", "route")
NUMERIC_FEATURES: tuple[str, ...] = (
    "distance", "sched_dep_hour", "sched_dep_weekday", "month",
    "temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib",
    "carrier_ontime_7d", "carrier_flights_7d", "carrier_ontime_28d", "carrier_flights_28d",
    "origin_ontime_7d", "origin_flights_7d", "origin_ontime_28d", "origin_flights_28d",
    "route_ontime_7d", "route_flights_7d", "route_ontime_28d", "route_flights_28d",
)
# Order matters: the encoder emits categorical columns first, so the booster's
# ``categorical_features`` are the first len(CATEGORICAL_FEATURES) positions.
FEATURES: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES
LABEL = "label"
ARRIVED = "arrived"
ORIGINS: tuple[str, ...] = ("EWR", "JFK", "LGA")

# HGB bins a categorical feature into at most 255 bins (one kept for missing). Rare codes
# beyond this many are grouped into one "infrequent" category instead of failing the fit:
# nycflights has ~220 routes, a larger network would have more.
MAX_CATEGORIES = 250

# OpenMP threads for fitting and predicting. One: the executor runs tasks side by side on
# small workers, and HGB's OpenMP loops on an oversubscribed 2-core box ran ~10x slower
# with 2 threads than with 1 (measured: 5,000-row predict 0.61 s vs 0.05 s). Raise it on a
# dedicated machine.
THREADS = 1


def compute_threads():
    """Context that caps OpenMP/BLAS threads at :data:`THREADS` for the heavy calls."""
    return threadpool_limits(limits=THREADS)


DEFAULT_PARAMS: dict[str, Any] = PARAMS_BY_TYPE[HIST_GRADIENT_BOOSTING]


@dataclass(frozen=True)
class Split:
    """Three time-ordered windows: every train dt < every valid dt < every test dt."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    valid_start: date
    test_start: date


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that can be learned from or scored against: arrived flights with a label."""
    mask = (df["label_status"] == ARRIVED) & df[LABEL].notna()
    return df.loc[mask]


def split_by_date(df: pd.DataFrame, *, test_days: int, valid_days: int) -> Split:
    """Split by calendar day of ``dt``, never shuffling across time.

    The last ``test_days`` calendar days (counted back from the newest ``dt``) are the test
    window, the ``valid_days`` before them validation, everything older training. Calendar
    days, not partition counts, so a missing partition does not silently widen a window.
    """
    if test_days < 1 or valid_days < 1:
        raise ValueError("test_days and valid_days must both be at least 1")
    if df.empty:
        raise ValueError("cannot split an empty frame")
    days = pd.to_datetime(df["dt"], format="%Y-%m-%d").dt.date
    last = days.max()
    test_start = last - timedelta(days=test_days - 1)
    valid_start = test_start - timedelta(days=valid_days)
    train = df.loc[days < valid_start]
    valid = df.loc[(days >= valid_start) & (days < test_start)]
    test = df.loc[days >= test_start]
    for name, part in (("train", train), ("valid", valid), ("test", test)):
        if part.empty:
            raise ValueError(
                f"{name} window is empty: data spans {days.min()}..{last}, "
                f"valid starts {valid_start}, test starts {test_start}"
            )
    return Split(train=train, valid=valid, test=test, valid_start=valid_start, test_start=test_start)


def _xy(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    rows = labelled(df)
    missing = [c for c in FEATURES if c not in rows.columns]
    if missing:
        raise KeyError(f"feature columns missing: {missing}")
    return rows.loc[:, list(FEATURES)], rows[LABEL].to_numpy(dtype=np.int64)


def _encoder(numeric: list[str]) -> ColumnTransformer:
    # Unknown or missing categories become NaN, which HGB routes natively: a route first
    # seen after training scores instead of failing the batch.
    categorical = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        max_categories=MAX_CATEGORIES,
        dtype=np.float64,
    )
    return ColumnTransformer(
        [("categorical", categorical, list(CATEGORICAL_FEATURES)),
         ("numeric", "passthrough", numeric)],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def train(
    train_df: pd.DataFrame, valid_df: pd.DataFrame, params: Mapping[str, Any],
    model_type: str = HIST_GRADIENT_BOOSTING,
) -> tuple[Pipeline, dict[str, float]]:
    """Fit a delay classifier of family ``model_type`` on ``train_df``; measure on ``valid_df``.

    Returns the fitted pipeline and its validation metrics (see :func:`evaluate`) prefixed
    ``valid_``, plus ``best_iteration``, ``train_rows`` and ``features_unused`` (numeric
    columns entirely empty in the window, left out of this model).

    ``hist_gradient_boosting`` (the default): ordinal-encoded categoricals → scikit-learn's
    ``HistGradientBoostingClassifier``.
      * no extra native dependency (LightGBM/XGBoost wheels bring their own OpenMP and
        versioning) — it ships with scikit-learn, already locked;
      * native missing-value handling (weather gaps, new routes with no trailing rates) and
        native categorical splits, so no one-hot blow-up and no imputation step to keep in sync;
      * serializable with skops using a short, explicit trusted-type list
        (:data:`contrail.registry.TRUSTED_TYPES`), so loading a model never needs pickle;
      * a 90-day window (~80k rows) fits in seconds on two cores.
      Early stopping uses ``valid_df`` (the later window) rather than HGB's default random
      hold-out, which would leak future days into the stopping decision.

    ``logistic_regression``: the baseline a booster has to beat. One-hot categoricals (rare
    codes grouped, unseen ones all-zero), numeric columns median-imputed with a missing
    indicator and standardised, then an L2 logistic regression.
    """
    settings = effective_params(model_type, params)
    x_train, y_train = _xy(train_df)
    x_valid, y_valid = _xy(valid_df)
    if len(np.unique(y_train)) < 2:
        raise ValueError("training window holds a single class: cannot fit a classifier")

    # A numeric column with no value at all in the window (e.g. wind_gust on calm weeks)
    # cannot be binned or imputed; drop it for this model rather than fail the run.
    numeric = [c for c in NUMERIC_FEATURES if x_train[c].notna().any()]
    if model_type == HIST_GRADIENT_BOOSTING:
        encoder = _encoder(numeric).fit(x_train)
        classifier = HistGradientBoostingClassifier(
            categorical_features=list(range(len(CATEGORICAL_FEATURES))),
            early_stopping=True,
            scoring="loss",
            **settings,
        )
        with compute_threads():
            classifier.fit(encoder.transform(x_train), y_train,
                           X_val=encoder.transform(x_valid), y_val=y_valid)
        iterations = float(classifier.n_iter_)
    else:
        encoder = _linear_encoder(numeric, min_frequency=int(settings["min_frequency"])).fit(x_train)
        classifier = LogisticRegression(C=float(settings["C"]), max_iter=int(settings["max_iter"]))
        with compute_threads():
            classifier.fit(encoder.transform(x_train), y_train)
        iterations = float(np.max(classifier.n_iter_))
    model = Pipeline([("encode", encoder), ("classify", classifier)])

    metrics = {f"valid_{k}": v for k, v in evaluate(model, valid_df).items()}
    metrics["best_iteration"] = iterations
    metrics["train_rows"] = float(len(y_train))
    metrics["features_unused"] = float(len(NUMERIC_FEATURES) - len(numeric))
    return model, metrics


def _linear_encoder(numeric: list[str], *, min_frequency: int) -> ColumnTransformer:
    categorical = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_frequency,
                                sparse_output=False, dtype=np.float64)
    numbers = Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                        ("scale", StandardScaler())])
    return ColumnTransformer(
        [("categorical", categorical, list(CATEGORICAL_FEATURES)), ("numeric", numbers, numeric)],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def choose_threshold(y_true: np.ndarray, proba: np.ndarray, *, cost_ratio: float | None = None) -> float:
    """The decision threshold, chosen on the validation window (pure).

    ``cost_ratio`` None: the threshold with the best F1 of the "delayed" class (a missed
    delay and a false alarm weigh alike relative to how rare delays are). A number ``r``: the
    threshold that minimises ``false alarms + r × missed delays`` (``r`` = how many false
    alarms one missed delay is worth). Candidates are the validation probabilities
    themselves; the result is kept inside (0, 1) so scoring accepts it.
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if len(y) == 0 or len(np.unique(y)) < 2:
        raise ValueError("choosing a threshold needs both classes in the validation window")
    if cost_ratio is None:
        precision, recall, thresholds = precision_recall_curve(y, p)
        f1 = np.divide(2 * precision * recall, precision + recall,
                       out=np.zeros_like(precision), where=(precision + recall) > 0)[:-1]
        best = float(thresholds[int(np.argmax(f1))])
    else:
        if cost_ratio <= 0:
            raise ValueError(f"cost_ratio must be > 0, got {cost_ratio}")
        order = np.argsort(-p, kind="stable")
        p_sorted, y_sorted = p[order], y[order]
        # flagging the top k: false alarms = negatives among them, misses = positives after them
        false_alarms = np.cumsum(1 - y_sorted)
        misses = y_sorted.sum() - np.cumsum(y_sorted)
        cost = false_alarms + cost_ratio * misses
        k = int(np.argmin(cost))
        best = float(p_sorted[k])
    return float(min(max(best, 1e-6), 1 - 1e-6))


def decide_threshold(model: Any, valid_df: pd.DataFrame, *, cost_ratio: float | None = None) -> float:
    """:func:`choose_threshold` for ``model`` on the arrived flights of ``valid_df``."""
    x, y = _xy(valid_df)
    return choose_threshold(y, _proba(model, x), cost_ratio=cost_ratio)


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate − mean predicted| over equal-width probability bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(proba, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = idx == b
        if in_bin.any():
            total += in_bin.sum() * abs(y_true[in_bin].mean() - proba[in_bin].mean())
    return float(total / len(proba))


def _proba(model: Any, x: pd.DataFrame) -> np.ndarray:
    with compute_threads():
        return model.predict_proba(x)[:, 1]


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan


def evaluate(model: Any, df: pd.DataFrame) -> dict[str, float]:
    """Metrics of ``model`` on the arrived flights of ``df``.

    Keys: ``roc_auc``, ``pr_auc`` (average precision), ``log_loss``, ``brier``, ``ece``
    (10-bin expected calibration error), ``positive_rate``, ``rows`` and ``auc_origin_EWR``,
    ``auc_origin_JFK``, ``auc_origin_LGA``. A ranking metric that needs both classes is NaN
    when the rows hold one class only (the caller decides what NaN means).
    """
    x, y = _xy(df)
    if len(y) == 0:
        raise ValueError("no arrived flights to evaluate on")
    proba = _proba(model, x)
    two_classes = len(np.unique(y)) == 2
    metrics = {
        "roc_auc": _auc(y, proba),
        "pr_auc": float(average_precision_score(y, proba)) if two_classes else math.nan,
        "log_loss": float(log_loss(y, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y, proba)),
        "ece": expected_calibration_error(y, proba),
        "positive_rate": float(y.mean()),
        "rows": float(len(y)),
    }
    origins = x["origin"].to_numpy()
    for origin in ORIGINS:
        at = origins == origin
        metrics[f"auc_origin_{origin}"] = _auc(y[at], proba[at]) if at.any() else math.nan
    return metrics


# -- figures: built with matplotlib's object API (no pyplot state, safe in worker threads) --

def _axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=(5, 4), dpi=100, layout="tight")
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def roc_figure(model: Any, df: pd.DataFrame) -> Figure:
    x, y = _xy(df)
    proba = _proba(model, x)
    fpr, tpr, _ = roc_curve(y, proba)
    fig, ax = _axes(f"ROC (AUC {_auc(y, proba):.3f})", "false positive rate", "true positive rate")
    ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    return fig


def pr_figure(model: Any, df: pd.DataFrame) -> Figure:
    x, y = _xy(df)
    precision, recall, _ = precision_recall_curve(y, _proba(model, x))
    fig, ax = _axes("Precision-recall", "recall", "precision")
    ax.plot(recall, precision)
    ax.axhline(y.mean(), linestyle=":", color="grey", label="base rate")
    ax.legend()
    return fig


def calibration_figure(model: Any, df: pd.DataFrame, bins: int = 10) -> Figure:
    x, y = _xy(df)
    proba = _proba(model, x)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(proba, edges[1:-1], right=True), 0, bins - 1)
    used = [b for b in range(bins) if (idx == b).any()]
    mean_pred = [proba[idx == b].mean() for b in used]
    observed = [y[idx == b].mean() for b in used]
    fig, ax = _axes(f"Calibration (ECE {expected_calibration_error(y, proba, bins):.3f})",
                    "mean predicted probability", "observed delay rate")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.plot(mean_pred, observed, marker="o")
    return fig


def feature_importance(model: Any, df: pd.DataFrame, *, max_rows: int = 5000, repeats: int = 3,
                       seed: int = 13) -> pd.Series:
    """Permutation importance (drop in ROC AUC) per input feature, largest first.

    HGB has no built-in importances; permuting the raw columns through the whole pipeline
    also ranks categoricals as one feature each. Sampled to ``max_rows`` for speed.
    """
    x, y = _xy(df)
    if len(y) > max_rows:
        pick = np.random.default_rng(seed).choice(len(y), size=max_rows, replace=False)
        pick.sort()
        x, y = x.iloc[pick], y[pick]
    with compute_threads():
        result = permutation_importance(model, x, y, scoring="roc_auc", n_repeats=repeats,
                                        random_state=seed, n_jobs=1)
    return pd.Series(result.importances_mean, index=list(FEATURES)).sort_values(ascending=False)


def importance_figure(importance: pd.Series, top: int = 20) -> Figure:
    shown = importance.head(top)[::-1]
    fig = Figure(figsize=(6, 0.3 * len(shown) + 1.2), dpi=100, layout="tight")
    ax = fig.add_subplot()
    ax.barh(list(shown.index), shown.to_numpy())
    ax.set(title="Permutation importance (ROC AUC drop)", xlabel="mean AUC drop")
    return fig


def figures(model: Any, df: pd.DataFrame) -> dict[str, Figure]:
    """All evaluation figures for ``df``, keyed by the artifact file name to log them under."""
    return {
        "roc.png": roc_figure(model, df),
        "pr.png": pr_figure(model, df),
        "calibration.png": calibration_figure(model, df),
        "feature_importance.png": importance_figure(feature_importance(model, df)),
    }
