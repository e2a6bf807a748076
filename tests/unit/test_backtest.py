"""The walk-forward backtest (pure folds: no fold sees its test week or later; then moto S3 +
a local MLflow: one parent run with the weekly table, mean and plot, a child run per week) and
a scheduled training run's window ending at its own data interval."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import mlflow
import pytest

from contrail import backtest, training
from contrail.stages.training import backtest_on_lake, training_window, window_end_for
from test_notebook_example import BUCKET, FEATURE_SET, _publish_features
from test_training import FAST, synthetic_features


def _days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=k) for k in range(n)]


def test_weeks_tile_the_range_and_the_last_ends_at_its_end():
    weeks = backtest.weeks(date(2013, 3, 1), date(2013, 3, 17))
    assert [(w.first.isoformat(), w.last.isoformat()) for w in weeks] == [
        ("2013-03-01", "2013-03-07"), ("2013-03-08", "2013-03-14"), ("2013-03-15", "2013-03-17")]
    assert len(backtest.weeks(date(2013, 1, 1), date(2013, 12, 30))) == 52
    assert [w.first.day for w in backtest.weeks(date(2013, 3, 1), date(2013, 3, 3), days=1)] == [1, 2, 3]
    with pytest.raises(ValueError):
        backtest.weeks(date(2013, 3, 2), date(2013, 3, 1))


def test_no_fold_trains_or_validates_on_its_week_or_later():
    available = _days(date(2013, 1, 1), 120)
    folds = backtest.folds(available, date(2013, 2, 1), date(2013, 4, 30), window_days=21, valid_days=7)
    assert len(folds) == 13 and all(f.complete for f in folds)
    for fold in folds:
        seen = fold.train + fold.valid
        assert max(seen) < fold.week.first <= min(fold.test)
        assert max(fold.test) <= fold.week.last
        assert len(fold.valid) == 7 and fold.valid[-1] == fold.week.first - timedelta(days=1)
        assert fold.train[0] == fold.week.first - timedelta(days=21) and max(fold.train) < min(fold.valid)
    # every test day is tested exactly once
    tested = [d for f in folds for d in f.test]
    assert tested == [d for d in available if date(2013, 2, 1) <= d <= date(2013, 4, 30)]


def test_a_fold_with_missing_days_uses_calendar_days_and_may_be_incomplete():
    available = [d for d in _days(date(2013, 3, 1), 20) if d != date(2013, 3, 12)]
    fold = backtest.fold_days(available, backtest.Week(date(2013, 3, 15), date(2013, 3, 21)),
                              window_days=6, valid_days=3)
    assert fold.valid == [date(2013, 3, 12 + k) for k in (1, 2)]  # the gap does not widen the window
    assert fold.train == [date(2013, 3, 9), date(2013, 3, 10), date(2013, 3, 11)]
    early = backtest.fold_days(available, backtest.Week(date(2013, 3, 2), date(2013, 3, 8)),
                               window_days=6, valid_days=3)
    assert not early.complete and early.train == []


def test_summary_means_the_weeks_that_ran():
    table, mean = backtest.summary([
        {"week_start": "a", "week_end": "b", "test_roc_auc": 0.6, "train_days": 3, "test_rows": 9, "status": "ran"},
        {"week_start": "c", "week_end": "d", "test_roc_auc": None, "train_days": 0, "test_rows": 0, "status": "skipped"},
        {"week_start": "e", "week_end": "f", "test_roc_auc": 0.8, "train_days": 3, "test_rows": 9, "status": "ran"}])
    assert list(table["week_start"]) == ["a", "c", "e"] and mean == pytest.approx(0.7)
    assert math.isnan(backtest.summary([])[1])


def test_a_scheduled_run_trains_on_its_own_interval_and_eight_weeks_give_eight_windows():
    available = _days(date(2013, 1, 1), 120)
    ends = [datetime(2013, 3, 3, tzinfo=timezone.utc) + timedelta(weeks=k) for k in range(8)]
    windows = []
    for end in ends:
        window_end = window_end_for(window_end=None, to_date=None, data_interval_end=end, run_type="backfill")
        assert window_end == end.date() - timedelta(days=1)
        windows.append(tuple(training_window(available, window_days=28, window_end=window_end)))
    assert len(set(windows)) == 8 and all(w[-1] < e.date() for w, e in zip(windows, ends))
    assert window_end_for(window_end=None, to_date=None, data_interval_end=ends[0], run_type="scheduled") == \
        date(2013, 3, 2)
    # the explicit param wins, then a re-run's to_date; a manual run (UI, API, monitoring's
    # retrain, stamped "now") or a run without a logical date: the latest
    assert window_end_for(window_end="2013-02-01", to_date=date(2013, 2, 5), data_interval_end=ends[0],
                          run_type="backfill") == date(2013, 2, 1)
    assert window_end_for(window_end=None, to_date=date(2013, 2, 5), data_interval_end=ends[0],
                          run_type="backfill") == date(2013, 2, 5)
    assert window_end_for(window_end=None, to_date=None, data_interval_end=ends[0], run_type="manual") is None
    assert window_end_for(window_end=None, to_date=None, data_interval_end=None, run_type="manual") is None


@pytest.fixture
def tracking(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment("contrail-backtest-test", artifact_location=(tmp_path / "a").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    yield mlflow.MlflowClient()
    mlflow.set_tracking_uri(previous)


def test_backtest_on_the_lake_logs_one_child_per_week_under_one_parent(moto_s3, tracking):
    moto_s3.create_bucket(Bucket=BUCKET)
    _publish_features(moto_s3, synthetic_features(days=24, per_day=40))  # 2013-03-01 .. 03-24
    fold_runs = backtest_on_lake(moto_s3, BUCKET, feature_set=FEATURE_SET, model_type=training.HIST_GRADIENT_BOOSTING,
                                 params=FAST, first=date(2013, 3, 4), last=date(2013, 3, 24),
                                 window_days=10, valid_days=3)
    assert [r["fold"].week.first.isoformat() for r in fold_runs] == ["2013-03-04", "2013-03-11", "2013-03-18"]
    skipped, *ran = fold_runs  # the first week has 3 days before it: validation only, no training
    assert "metrics" not in skipped and skipped["status"].startswith("skipped")
    for item in ran:
        assert max(item["fold"].valid) < item["fold"].week.first and item["metrics"]["roc_auc"] > 0.55
    assert ran[0]["metrics"] != ran[1]["metrics"]  # a model per week, each on its own week

    logged = backtest.log_backtest(run_name="backtest", tags={"contrail.airflow.dag_id": "training"},
                                   params={"window_days": 10}, fold_runs=fold_runs)
    parent = tracking.get_run(logged["run_id"])
    children = tracking.search_runs([parent.info.experiment_id],
                                    filter_string=f"tags.mlflow.parentRunId = '{logged['run_id']}'")
    assert sorted(c.info.run_id for c in children) == sorted(logged["child_run_ids"]) and len(children) == 2
    assert {c.data.params["week_start"] for c in children} == {"2013-03-11", "2013-03-18"}
    aucs = [item["metrics"]["roc_auc"] for item in ran]
    assert parent.data.metrics["mean_test_roc_auc"] == pytest.approx(sum(aucs) / 2)
    artifacts = {a.path for a in tracking.list_artifacts(logged["run_id"], "backtest")}
    assert artifacts == {backtest.TABLE_ARTIFACT, backtest.PLOT_ARTIFACT}
    png = mlflow.artifacts.download_artifacts(run_id=logged["run_id"], artifact_path=backtest.PLOT_ARTIFACT)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # nothing registered; what the task returns is strict JSON (its XCom goes through the API)
    assert tracking.search_registered_models() == []
    import json

    assert json.loads(json.dumps(logged, allow_nan=False))["weeks"][0]["test_roc_auc"] is None


def test_the_stage_dags_take_the_rerun_params_and_a_backtest_emits_no_model_event():
    from airflow.dag_processing.dagbag import DagBag

    from contrail.settings import REPO_ROOT

    dags = {}
    for dag_id in ("features", "scoring", "training"):
        bag = DagBag(str(REPO_ROOT / "dags" / f"{dag_id}.py"))
        assert not bag.import_errors, bag.import_errors
        dags[dag_id] = bag.dags[dag_id]
        assert {"from_date", "to_date", "reason"} <= set(dags[dag_id].params), dag_id
    assert "model_version" in dags["scoring"].params and "rebuild" in dags["features"].params
    training_dag = dags["training"]
    assert "rebuild" not in training_dag.params and training_dag.params["mode"] == "train"
    assert [o.name for o in training_dag.get_task("train").outlets] and not training_dag.get_task("backtest").outlets
    assert training_dag.get_task("choose_mode").downstream_task_ids == {"train", "backtest"}
