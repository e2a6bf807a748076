"""Batch scoring on tiny synthetic partitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contrail import scoring, training
from test_training import FAST, synthetic_features  # same directory: one schema for all tests

IDS = {"model_name": "flight_delay", "model_version": 7, "run_id": "r-123", "threshold": 0.5}


@pytest.fixture(scope="module")
def model_and_day():
    frame = synthetic_features(days=15, per_day=50)
    split = training.split_by_date(frame, test_days=1, valid_days=3)
    model, _ = training.train(split.train, split.valid, FAST)
    return model, split.test  # one day, cancelled flights included


def test_score_names_the_model_on_every_row_and_scores_every_flight(model_and_day):
    model, day = model_and_day
    out = scoring.score(model, day, **IDS)
    assert list(out.columns) == list(scoring.PREDICTION_COLUMNS)
    assert len(out) == len(day) and set(out["flight_id"]) == set(day["flight_id"])
    assert (out["model_name"] == "flight_delay").all() and (out["model_version"] == "7").all()
    assert (out["run_id"] == "r-123").all() and out["probability"].between(0, 1).all()
    assert (out["dt"] == day["dt"].iloc[0]).all()


def test_score_matches_the_model_and_applies_the_threshold(model_and_day):
    model, day = model_and_day
    out = scoring.score(model, day, **{**IDS, "threshold": 0.3})
    proba = model.predict_proba(day.loc[:, list(training.FEATURES)])[:, 1]
    expected = pd.Series(proba, index=day["flight_id"].to_numpy())
    np.testing.assert_allclose(out["probability"].to_numpy(), expected.loc[out["flight_id"]].to_numpy())
    assert ((out["probability"] >= 0.3) == (out["label"] == 1)).all()
    assert 0 < out["label"].sum() < len(out)  # the threshold really splits this day


def test_score_is_deterministic_whatever_the_input_order(model_and_day):
    model, day = model_and_day
    first = scoring.score(model, day, **IDS)
    shuffled = scoring.score(model, day.sample(frac=1.0, random_state=3), **IDS)
    pd.testing.assert_frame_equal(first, shuffled)
    assert first["flight_id"].is_monotonic_increasing


def test_score_ignores_extra_columns_and_handles_an_empty_partition(model_and_day):
    model, day = model_and_day
    without_label = scoring.score(model, day.drop(columns=["label", "label_status"]), **IDS)
    pd.testing.assert_frame_equal(without_label, scoring.score(model, day, **IDS))
    empty = scoring.score(model, day.head(0), **IDS)
    assert empty.empty and list(empty.columns) == list(scoring.PREDICTION_COLUMNS)


def test_score_refuses_missing_features_duplicates_and_a_silly_threshold(model_and_day):
    model, day = model_and_day
    with pytest.raises(KeyError, match="precip"):
        scoring.score(model, day.drop(columns=["precip"]), **IDS)
    with pytest.raises(ValueError, match="duplicate flight_id"):
        scoring.score(model, pd.concat([day, day.head(1)]), **IDS)
    with pytest.raises(ValueError, match="threshold"):
        scoring.score(model, day, **{**IDS, "threshold": 1.0})
