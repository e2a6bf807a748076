"""The training stage's lake side: the trailing window of published partitions, the chosen
family and params, the threshold chosen on the validation window (moto S3, tiny partitions)."""

from __future__ import annotations

from datetime import date

from contrail import training
from contrail.stages.training import train_on_lake
from test_notebook_example import BUCKET, FEATURE_SET, _publish_features
from test_training import synthetic_features  # same directory: one schema for all tests


def test_train_on_lake_fits_the_chosen_family_on_the_window_and_picks_its_threshold(moto_s3):
    moto_s3.create_bucket(Bucket=BUCKET)
    frame = synthetic_features(days=20, per_day=40)
    _publish_features(moto_s3, frame)
    common = {"feature_set": FEATURE_SET, "window_days": 16, "test_days": 3, "valid_days": 3,
              "window_end": date(2013, 3, 19)}
    trained = train_on_lake(moto_s3, BUCKET, model_type=training.LOGISTIC_REGRESSION, params={"C": 0.3},
                            cost_ratio=4.0, **common)
    assert [d.isoformat() for d in (trained.window[0], trained.window[-1])] == ["2013-03-04", "2013-03-19"]
    assert trained.split.test_start == date(2013, 3, 17) and trained.params == {**training.PARAMS_BY_TYPE[
        training.LOGISTIC_REGRESSION], "C": 0.3}
    assert trained.threshold == training.decide_threshold(trained.model, trained.split.valid, cost_ratio=4.0)
    assert trained.test_metrics["roc_auc"] > 0.6
    f1 = train_on_lake(moto_s3, BUCKET, model_type=training.LOGISTIC_REGRESSION, params={"C": 0.3}, **common)
    assert f1.threshold > trained.threshold  # a missed delay worth 4 false alarms flags more flights
    too_short = {**common, "window_days": 6}
    assert train_on_lake(moto_s3, BUCKET, model_type=training.HIST_GRADIENT_BOOSTING, params={}, **too_short) is None
