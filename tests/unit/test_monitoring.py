"""Monitoring: the pure metrics and rule on tiny frames, then the stage on real days of 2013
(moto S3, the real landed flights CSVs, a SQLite MLflow): a champion whose predictions rank the
outcomes backwards is found degraded and retraining is asked for once."""

from __future__ import annotations

import gzip
import math
from datetime import date

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from contrail import catalog, lake, monitoring, nycflights, registry, training
from test_training import FAST, synthetic_features  # same directory: one schema for all tests


# ----------------------------------------------------------------------------- pure

def test_outcomes_use_the_feature_jobs_flight_id_and_drop_cancelled_and_diverted():
    landed = pd.DataFrame({
        "year": [2013] * 3, "month": [1] * 3, "day": [2] * 3, "hour": [5, 6, 7], "minute": [15, 0, 5],
        "carrier": ["UA", "B6", "AA"], "flight": [1545, 725, 1],
        "origin": ["EWR", "JFK", "LGA"], "dep_time": [517, None, 700], "arr_delay": [20.0, None, 14.0]})
    out = monitoring.outcomes(landed)
    assert out.to_dict("records") == [
        {"flight_id": "UA-1545-EWR-201301020515", "dt": "2013-01-02", "outcome": 1},
        {"flight_id": "AA-1-LGA-201301020705", "dt": "2013-01-02", "outcome": 0}]


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"temp": rng.normal(50, 10, 5000)})
    profile = monitoring.feature_profile(train, features=("temp",))
    same = monitoring.feature_psi(profile, pd.DataFrame({"temp": rng.normal(50, 10, 2000)}))["temp"]
    shifted = monitoring.feature_psi(profile, pd.DataFrame({"temp": rng.normal(65, 10, 2000)}))["temp"]
    gaps = monitoring.feature_psi(profile, pd.DataFrame({"temp": [np.nan] * 500 + list(rng.normal(50, 10, 500))}))
    assert same < 0.02 and shifted > 0.5 and gaps["temp"] > 0.2  # missing values are a bin of their own
    assert monitoring.psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_daily_metrics_per_version_and_day_on_flights_with_an_outcome():
    preds = pd.DataFrame({"flight_id": ["a", "b", "c", "d", "e"], "dt": ["2013-02-01"] * 4 + ["2013-02-02"],
                          "probability": [0.9, 0.2, 0.6, 0.1, 0.5], "label": [1, 0, 1, 0, 1],
                          "model_version": ["3"] * 5})
    outcome = pd.DataFrame({"flight_id": ["a", "b", "c", "e"], "outcome": [1, 0, 0, 1]})  # d was cancelled
    out = monitoring.daily_metrics(preds, outcome, source="batch").set_index("dt")
    first = out.loc["2013-02-01"]
    assert first["rows"] == 3 and first["roc_auc"] == 1.0
    assert first["brier"] == pytest.approx((0.01 + 0.04 + 0.36) / 3)
    assert first["positive_rate"] == pytest.approx(1 / 3) and first["predicted_positive_rate"] == pytest.approx(2 / 3)
    assert math.isnan(out.loc["2013-02-02", "roc_auc"])  # one class: AUC undefined, not 0.5
    assert math.isnan(first["psi_max"])  # no profile given


def _series(aucs, psi=0.05, rows=500):
    return pd.DataFrame({"model_version": "3", "source": "batch", "dt": [f"2013-05-{d + 1:02d}" for d in range(len(aucs))],
                         "rows": rows, "roc_auc": aucs, "psi_max": psi, "psi_feature": "temp"})


def test_degradation_rule_needs_n_low_days_in_a_row_or_a_large_psi():
    rule = monitoring.DegradationRule(auc_floor=0.6, days=3, psi_limit=0.2, min_rows=100)
    assert monitoring.degradation(_series([0.7, 0.55, 0.55, 0.7]), rule) is None
    reason = monitoring.degradation(_series([0.7, 0.55, 0.58, 0.5]), rule)
    assert reason.startswith("ROC AUC below 0.6 for 3 days") and "2013-05-04 0.500" in reason
    assert "PSI of temp 0.300" in monitoring.degradation(_series([0.7, 0.7], psi=0.3), rule)
    assert monitoring.degradation(_series([0.4, 0.4, 0.4], rows=50), rule) is None  # too few outcomes


# ----------------------------------------------------------------------------- the stage

DAYS = [date(2013, 2, 4), date(2013, 2, 5), date(2013, 2, 6)]
BUCKET, MODEL, FEATURE_SET = "contrail-test", "delay_monitored", "flights_v1"


def _land_flights(s3, dt: date) -> None:
    body = gzip.compress(nycflights.day("flights", dt).to_csv(index=False, na_rep="NA").encode(), mtime=0)
    key = catalog.landing_prefix("flights", dt, 1) + "flights.csv.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    lake.put_json(s3, BUCKET, catalog.landing_manifest_key("flights", dt, 1),
                  {"dataset": "flights", "dt": dt.isoformat(), "version": 1, "objects": [{"key": key}]})


def _publish_predictions(s3, dt: date, preds: pd.DataFrame) -> None:
    import io

    partition = catalog.predictions_partition(MODEL, dt)
    key = catalog.build_prefix(partition, "b1") + catalog.part_name(0)
    buf = io.BytesIO()
    preds.to_parquet(buf, index=False)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
    catalog.publish_partition(s3, BUCKET, partition, {"dt": dt.isoformat(), "model_version": "1",
                                                      "build": "b1", "parts": [key]})


def test_the_stage_finds_a_backwards_champion_degraded_and_asks_for_retraining_once(moto_s3, tmp_path):
    from contrail.stages import monitoring as stage

    moto_s3.create_bucket(Bucket=BUCKET)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("m", artifact_location=(tmp_path / "a").as_uri()))
    client = MlflowClient()
    # the champion (trained on the wrong label, as a degraded one would be) gives the profile
    frame = synthetic_features(days=12, per_day=60)
    split = training.split_by_date(frame, test_days=2, valid_days=2)
    model, _ = training.train(split.train.assign(label=1 - split.train["label"]), split.valid, FAST)
    run = registry.log_training_run(
        model=model, params=FAST, metrics={}, split=split, threshold=0.4, feature_set=FEATURE_SET,
        partitions=[registry.FeaturePartition(d, d, f"s3://x/{d}") for d in sorted(frame["dt"].unique())],
        dag_id="training", dag_run_id="wrong-label", git_commit="x", job_version="x", quality={"passed": True},
        profile=monitoring.feature_profile(training.labelled(split.train)))
    registry.register_and_promote(client, MODEL, run.run_id, registry.PromotionDecision(True, "champion", "test"),
                                  model_uri=run.model_uri)

    for dt in DAYS:
        _land_flights(moto_s3, dt)
        # its published predictions for the real flights of the day rank them backwards: AUC 0
        truth = monitoring.outcomes(nycflights.day("flights", dt))
        preds = pd.DataFrame({"flight_id": truth["flight_id"], "dt": truth["dt"],
                              "probability": np.where(truth["outcome"] == 1, 0.2, 0.7), "label": 0,
                              "model_version": "1"})
        _publish_predictions(moto_s3, dt, preds)

    rule = monitoring.DegradationRule(auc_floor=0.6, days=3, min_rows=100)
    first = stage.monitor(moto_s3, BUCKET, model_name=MODEL, feature_set=FEATURE_SET, mlflow_client=client, rule=rule)
    assert first.days == [d.isoformat() for d in DAYS] and first.champion == "1"
    assert first.retrain.startswith("ROC AUC below 0.6 for 3 days in a row (v1:")
    series = stage.monitoring_series(moto_s3, BUCKET, MODEL, version="1", source="batch")
    assert list(series["dt"]) == [d.isoformat() for d in DAYS] and (series["roc_auc"] == 0.0).all()
    assert (series["rows"] > 800).all()
    version = client.get_model_version(MODEL, "1")
    assert version.tags[stage.RETRAIN_TAG] == first.retrain
    history = client.get_metric_history(version.tags[stage.VERSION_RUN_TAG], "batch_roc_auc")
    assert [m.step for m in history] == [35, 36, 37] and {m.value for m in history} == {0.0}

    # nothing changed: nothing re-monitored, and retraining is not asked for twice
    again = stage.monitor(moto_s3, BUCKET, model_name=MODEL, feature_set=FEATURE_SET, mlflow_client=client, rule=rule)
    assert again.days == [] and again.retrain is None
