"""Training on tiny synthetic feature frames shaped like the ``features/<set>/dt=…`` contract.

``synthetic_features`` is shared with test_registry.py and test_scoring.py (same directory,
imported by module name) so all three agree on one schema.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from contrail import training

CARRIERS = ("AA", "B6", "DL", "EV", "UA")
DESTS = ("ATL", "BOS", "ORD", "LAX", "MIA", "SFO")


def synthetic_features(days: int = 30, per_day: int = 60, *, start: date = date(2013, 3, 1),
                       seed: int = 0) -> pd.DataFrame:
    """A feature frame with a learnable delay signal (evening, rain, carrier EV, origin EWR).

    About 8% of flights are cancelled/diverted with a null label, as in the real data.
    """
    rng = np.random.default_rng(seed)
    n = days * per_day
    day = np.repeat(np.arange(days), per_day)
    dts = [(start + timedelta(days=int(d))).isoformat() for d in day]
    origin = rng.choice(training.ORIGINS, n)
    dest = rng.choice(DESTS, n)
    carrier = rng.choice(CARRIERS, n)
    hour = rng.integers(5, 23, n)
    precip = np.where(rng.random(n) < 0.2, rng.exponential(0.2, n), 0.0)
    logit = -2.0 + 0.25 * (hour - 12) + 5.0 * precip + 1.2 * (carrier == "EV") + 0.6 * (origin == "EWR")
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    status = rng.choice(["arrived", "cancelled", "diverted"], n, p=[0.92, 0.06, 0.02])
    label[status != "arrived"] = np.nan
    frame = pd.DataFrame({
        "flight_id": [f"{dts[i]}-{carrier[i]}-{i}" for i in range(n)],
        "dt": dts,
        "time_hour": pd.to_datetime(dts) + pd.to_timedelta(hour, unit="h"),
        "origin": origin, "dest": dest, "carrier": carrier,
        "route": [f"{o}-{d}" for o, d in zip(origin, dest)],
        "distance": rng.integers(180, 2600, n).astype(float),
        "sched_dep_hour": hour, "sched_dep_weekday": (day + 4) % 7,
        "month": pd.to_datetime(dts).month,
        "temp": rng.normal(50, 15, n), "dewp": rng.normal(35, 15, n), "humid": rng.uniform(20, 100, n),
        "wind_speed": rng.gamma(2, 5, n),
        "wind_gust": np.where(rng.random(n) < 0.7, np.nan, rng.gamma(3, 6, n)),
        "precip": precip,
        "pressure": rng.normal(1015, 8, n), "visib": rng.choice([10.0, 5.0, 1.0], n),
    })
    for key in ("carrier", "origin", "route"):
        for window in ("7d", "28d"):
            frame[f"{key}_ontime_{window}"] = rng.uniform(0.6, 0.9, n)
            frame[f"{key}_flights_{window}"] = rng.integers(10, 500, n).astype(float)
    frame.loc[rng.random(n) < 0.05, "temp"] = np.nan  # weather gaps happen
    frame["label"] = pd.array(label, dtype="Float64").astype("Int64")
    frame["label_status"] = status
    return frame


FAST = {"max_iter": 40, "learning_rate": 0.2}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_features()


@pytest.fixture(scope="module")
def fitted(frame):
    split = training.split_by_date(frame, test_days=5, valid_days=5)
    model, metrics = training.train(split.train, split.valid, FAST)
    return split, model, metrics


def test_split_by_date_keeps_time_order_and_calendar_windows(frame):
    split = training.split_by_date(frame, test_days=5, valid_days=7)
    assert split.train["dt"].max() < split.valid["dt"].min()
    assert split.valid["dt"].max() < split.test["dt"].min()
    assert split.test_start == date(2013, 3, 26) and split.valid_start == date(2013, 3, 19)
    assert split.test["dt"].nunique() == 5 and split.valid["dt"].nunique() == 7
    assert len(split.train) + len(split.valid) + len(split.test) == len(frame)


def test_split_counts_calendar_days_not_partitions(frame):
    # the last two partitions are missing: the test window stays 5 calendar days (3 present)
    gappy = frame[frame["dt"] <= "2013-03-28"]
    gappy = gappy[~gappy["dt"].isin(["2013-03-26", "2013-03-27"])]
    split = training.split_by_date(gappy, test_days=5, valid_days=5)
    assert sorted(split.test["dt"].unique()) == ["2013-03-24", "2013-03-25", "2013-03-28"]


def test_split_refuses_an_empty_window(frame):
    with pytest.raises(ValueError, match="train window is empty"):
        training.split_by_date(frame, test_days=20, valid_days=10)


def test_train_learns_the_signal_and_reports_validation_metrics(fitted):
    split, model, metrics = fitted
    assert metrics["valid_roc_auc"] > 0.7  # the synthetic signal is strong; random would be ~0.5
    assert 1 <= metrics["best_iteration"] <= FAST["max_iter"]
    assert metrics["train_rows"] == (split.train["label_status"] == "arrived").sum()


def test_train_survives_a_numeric_column_empty_for_the_whole_window(frame):
    calm = frame.assign(wind_gust=np.nan)
    split = training.split_by_date(calm, test_days=5, valid_days=5)
    model, metrics = training.train(split.train, split.valid, FAST)
    assert metrics["features_unused"] == 1
    assert math.isfinite(training.evaluate(model, split.test)["roc_auc"])


def test_train_rejects_unknown_params(frame):
    split = training.split_by_date(frame, test_days=5, valid_days=5)
    with pytest.raises(ValueError, match="unknown hist_gradient_boosting params"):
        training.train(split.train, split.valid, {"n_estimators": 10})
    with pytest.raises(ValueError, match="unknown logistic_regression params"):
        training.train(split.train, split.valid, {"learning_rate": 0.1}, training.LOGISTIC_REGRESSION)
    with pytest.raises(ValueError, match="unknown model_type"):
        training.train(split.train, split.valid, {}, "random_forest")


def test_logistic_baseline_learns_and_handles_unseen_categories_and_gaps(frame):
    split = training.split_by_date(frame, test_days=5, valid_days=5)
    model, metrics = training.train(split.train, split.valid, {"C": 0.5}, training.LOGISTIC_REGRESSION)
    assert metrics["valid_roc_auc"] > 0.7
    assert model.named_steps["classify"].C == 0.5
    odd = split.test.assign(route="JFK-XXX", carrier="ZZ", temp=np.nan)
    assert np.isfinite(model.predict_proba(odd.loc[:, list(training.FEATURES)])).all()


def test_family_params_take_the_prefixed_dag_params_of_the_chosen_family_only():
    flat = {"hgb_learning_rate": 0.1, "hgb_max_iter": 50, "lr_C": 2.0, "lr_max_iter": None, "window_days": 90}
    assert training.family_params(training.HIST_GRADIENT_BOOSTING, flat) == {"learning_rate": 0.1, "max_iter": 50}
    assert training.family_params(training.LOGISTIC_REGRESSION, flat) == {"C": 2.0}


def test_threshold_best_f1_and_cost_ratio_rules():
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9])
    # flagging >= 0.4 catches all three delays with one false alarm: F1 6/7, the best
    assert training.choose_threshold(y, p) == pytest.approx(0.4)
    # a missed delay worth 10 false alarms: still 0.4 (no miss); worth 0.1: flag the two above
    # the first false alarm (cost 0 + 0.1 x 1 miss beats 1 false alarm)
    assert training.choose_threshold(y, p, cost_ratio=10) == pytest.approx(0.4)
    assert training.choose_threshold(y, p, cost_ratio=0.1) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="both classes"):
        training.choose_threshold(np.zeros(3), np.array([0.1, 0.2, 0.3]))


def test_evaluate_uses_arrived_flights_only_and_reports_every_metric(fitted):
    split, model, _ = fitted
    metrics = training.evaluate(model, split.test)
    assert metrics["rows"] == (split.test["label_status"] == "arrived").sum()
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece",
                "auc_origin_EWR", "auc_origin_JFK", "auc_origin_LGA"):
        assert math.isfinite(metrics[key]), key
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["brier"] <= 1


def test_evaluate_per_origin_auc_is_nan_when_origin_absent(fitted):
    split, model, _ = fitted
    metrics = training.evaluate(model, split.test[split.test["origin"] != "JFK"])
    assert math.isnan(metrics["auc_origin_JFK"]) and math.isfinite(metrics["auc_origin_EWR"])


def test_model_scores_unseen_categories_and_missing_weather(fitted):
    split, model, _ = fitted
    odd = split.test.head(3).copy()
    odd["route"] = "EWR-XXX"
    odd["carrier"] = "ZZ"
    odd["temp"] = np.nan
    proba = model.predict_proba(odd.loc[:, list(training.FEATURES)])[:, 1]
    assert np.all((proba > 0) & (proba < 1))


def test_expected_calibration_error_matches_hand_computation():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 0.5])
    # bins: [0.1,0.1] observed 0 → |0-0.1|*2; [0.5] observed 1 → 0.5; [0.9] observed 1 → 0.1
    assert training.expected_calibration_error(y, p) == pytest.approx((0.2 + 0.5 + 0.1) / 4)


def test_figures_are_built(fitted):
    split, model, _ = fitted
    figs = training.figures(model, split.test)
    assert set(figs) == {"roc.png", "pr.png", "calibration.png", "feature_importance.png"}
    assert all(isinstance(f, Figure) and f.axes for f in figs.values())


def test_feature_importance_ranks_the_planted_signal_high(fitted):
    split, model, _ = fitted
    importance = training.feature_importance(model, pd.concat([split.valid, split.test]), repeats=2)
    assert set(importance.index[:4]) & {"sched_dep_hour", "precip", "carrier"}
