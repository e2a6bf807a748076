"""Promotion rule (pure) and registry state against a real MLflow on SQLite in tmp_path."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from contrail import registry, training
from test_training import FAST, synthetic_features  # same directory: one schema for all tests

decide = registry.decide_promotion


# ----------------------------------------------------------------------------- the rule

@pytest.mark.parametrize(
    ("challenger", "champion", "promote"),
    [
        (0.80, 0.75, True),    # better by more than the margin
        (0.753, 0.75, False),  # better, but by less than the margin
        (0.755, 0.75, True),   # exactly the margin counts
        (0.75, 0.75, False),   # equal keeps the incumbent
        (0.70, 0.75, False),   # worse
    ],
)
def test_rule_compares_on_the_metric_with_a_margin(challenger, champion, promote):
    decision = decide(challenger={"roc_auc": challenger}, champion={"roc_auc": champion},
                      margin=0.005, quality_passed=True)
    assert decision.promote is promote
    assert decision.alias == ("champion" if promote else "challenger")


def test_rule_promotes_when_there_is_no_champion():
    decision = decide(challenger={"roc_auc": 0.6}, champion=None, margin=0.01, quality_passed=True)
    assert decision.promote and decision.alias == "champion" and "no champion" in decision.reason


def test_rule_never_promotes_when_quality_failed():
    decision = decide(challenger={"roc_auc": 0.99}, champion=None, margin=0.0, quality_passed=False)
    assert not decision.promote and "quality" in decision.reason


def test_rule_never_auto_replaces_a_champion_set_by_hand_but_flags_a_better_challenger():
    better = decide(challenger={"roc_auc": 0.90}, champion={"roc_auc": 0.75}, margin=0.01,
                    quality_passed=True, champion_set_by_hand=True)
    worse = decide(challenger={"roc_auc": 0.70}, champion={"roc_auc": 0.75}, margin=0.01,
                   quality_passed=True, champion_set_by_hand=True)
    assert not better.promote and better.alias == "challenger" and "review" in better.reason
    assert not worse.promote and "does not beat" in worse.reason


def test_rule_reads_lower_is_better_metrics_the_other_way():
    lower = decide(challenger={"log_loss": 0.40}, champion={"log_loss": 0.45}, margin=0.01,
                   quality_passed=True, metric="log_loss")
    higher = decide(challenger={"log_loss": 0.50}, champion={"log_loss": 0.45}, margin=0.01,
                    quality_passed=True, metric="log_loss")
    assert lower.promote and not higher.promote


def test_rule_refuses_a_challenger_without_the_metric_and_rejects_a_negative_margin():
    assert not decide(challenger={"roc_auc": math.nan}, champion=None, margin=0, quality_passed=True).promote
    with pytest.raises(ValueError):
        decide(challenger={"roc_auc": 0.8}, champion=None, margin=-0.1, quality_passed=True)


# ----------------------------------------------------------------------------- MLflow edges

@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    experiment = mlflow.create_experiment("contrail-test", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    yield MlflowClient()
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def trained():
    frame = synthetic_features(days=20, per_day=50)
    split = training.split_by_date(frame, test_days=4, valid_days=4)
    model, metrics = training.train(split.train, split.valid, FAST)
    metrics.update({f"test_{k}": v for k, v in training.evaluate(model, split.test).items()})
    return split, model, metrics


def _partitions(split):
    days = sorted(set(split.train["dt"]) | set(split.valid["dt"]) | set(split.test["dt"]))
    return [registry.FeaturePartition(dt=d, version=f"v-{d}", uri=f"s3://lake/features/flights_v1/dt={d}/")
            for d in days]


@pytest.fixture(scope="module")
def logged(tracking, trained):
    split, model, metrics = trained
    run = registry.log_training_run(
        model=model, params=FAST, metrics=metrics, split=split, partitions=_partitions(split),
        figures={"roc.png": training.roc_figure(model, split.test)},
        feature_set="flights_v1", dag_id="train_model", dag_run_id="manual__2013-03-20",
        git_commit="abc1234", job_version="0.1.0", quality={"passed": True, "checks": 12, "failed": 0},
        threshold=0.31, extra_params={"window_days": 20},
    )
    return run


def test_training_run_records_params_metrics_lineage_and_artifacts(tracking, logged, trained):
    split, _, metrics = trained
    run = tracking.get_run(logged.run_id)
    assert run.data.params["max_iter"] == "40" and run.data.params["threshold"] == "0.31"
    assert run.data.params["model_type"] == "hist_gradient_boosting" and run.data.params["window_days"] == "20"
    assert run.data.params["min_samples_leaf"] == "40"  # the family's defaults are logged too
    assert run.data.metrics["valid_roc_auc"] == pytest.approx(metrics["valid_roc_auc"])
    tags = run.data.tags
    assert (tags["contrail.airflow.dag_id"], tags["contrail.airflow.run_id"], tags["contrail.git_commit"],
            tags["contrail.feature_set"], tags["contrail.job_version"], tags["contrail.quality.passed"]) == (
        "train_model", "manual__2013-03-20", "abc1234", "flights_v1", "0.1.0", "true")
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 20  # one dataset per partition
    train_day = next(i for i in inputs if i.dataset.name == "flights_v1/dt=2013-03-01")
    assert train_day.dataset.digest == "v-2013-03-01"
    assert {t.key: t.value for t in train_day.tags}["mlflow.data.context"] == "training"
    artifacts = {a.path for a in tracking.list_artifacts(logged.run_id)}
    assert {"quality.json", "partitions.json", "figures"} <= artifacts


def test_trusted_types_are_exactly_what_the_model_families_need(trained):
    split, model, _ = trained
    linear, _ = training.train(split.train, split.valid, {}, training.LOGISTIC_REGRESSION)
    needed = {name: set(registry.untrusted_types(m)) for name, m in
              (("hgb", model), ("logistic_regression", linear))}
    assert set().union(*needed.values()) == set(registry.TRUSTED_TYPES)
    assert needed["logistic_regression"] == {"numpy.dtype"}


def test_logged_model_loads_with_the_allow_list_and_predicts_the_same(logged, trained):
    split, model, _ = trained
    loaded = registry.load_model(logged.model_uri)
    x = split.test.loc[:, list(training.FEATURES)]
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_loading_refuses_a_model_carrying_an_extra_untrusted_type(tracking, trained):
    _, model, _ = trained
    tampered = Pipeline([("extra", FunctionTransformer(math.sqrt)), *model.steps])
    extra = [t for t in registry.untrusted_types(tampered) if t not in registry.TRUSTED_TYPES]
    assert extra, "the test model must need a type outside the allow-list"
    with mlflow.start_run():
        # the artifact vouches for its own extra type in MLmodel; load_model must not care
        info = mlflow.sklearn.log_model(tampered, name="model", serialization_format="skops",
                                        skops_trusted_types=[*registry.TRUSTED_TYPES, *extra],
                                        pip_requirements=[])
    with pytest.raises(registry.UntrustedModelError, match="math.sqrt"):
        registry.load_model(info.model_uri)


def _promote(client, name, logged, decision, at_hour):
    return registry.register_and_promote(client, name, logged.run_id, decision, model_uri=logged.model_uri,
                                         metrics={"roc_auc": 0.8},
                                         at=datetime(2013, 3, 20, at_hour, tzinfo=timezone.utc))


PROMOTE = registry.PromotionDecision(True, "champion", "better")
REFUSE = registry.PromotionDecision(False, "challenger", "worse")


def test_champion_and_challenger_aliases_and_history(tracking, logged):
    name = "delay_flow"
    assert registry.current_champion(tracking, name) is None
    v1 = _promote(tracking, name, logged, PROMOTE, 1)
    v2 = _promote(tracking, name, logged, REFUSE, 2)
    assert tracking.get_model_version_by_alias(name, "champion").version == v1.version == 1
    assert tracking.get_model_version_by_alias(name, "challenger").version == v2.version == 2
    assert v1.tags["promoted_by"] == "contrail-pipeline" and v1.tags["contrail.decision"] == "promoted"
    assert v2.tags["contrail.decision"] == "refused" and v2.tags["contrail.compared_with"] == "1"
    assert "promoted_by" not in v2.tags
    v3 = _promote(tracking, name, logged, PROMOTE, 3)
    aliases = tracking.get_registered_model(name).aliases
    assert aliases == {"champion": 3}  # the losing challenger alias is cleared
    history = json.loads(tracking.get_registered_model(name).tags["promotion_history"])
    assert [(e["event"], e["version"], e["champion_after"]) for e in history] == [
        ("promoted", "1", "1"), ("refused", "2", "1"), ("promoted", "3", "3")]
    assert history[0]["at"] == "2013-03-20T01:00:00+00:00"
    champion = registry.current_champion(tracking, name)
    assert champion.version == "3" and not champion.set_by_hand


def test_champion_set_by_hand_is_detected_and_recorded(tracking, logged):
    name = "delay_by_hand"
    _promote(tracking, name, logged, PROMOTE, 1)
    _promote(tracking, name, logged, REFUSE, 2)
    tracking.set_registered_model_alias(name, "champion", "2")  # a data scientist, in the UI
    champion = registry.current_champion(tracking, name)
    assert champion.version == "2" and champion.set_by_hand
    _promote(tracking, name, logged, REFUSE, 3)
    history = registry.promotion_history(tracking, name)
    assert [e["event"] for e in history] == [
        "promoted", "refused", "champion_changed_outside_pipeline", "refused"]
    assert history[2]["champion_before"] == "1" and history[2]["champion_after"] == "2"
    # still hand-set after the observation was written down
    assert registry.current_champion(tracking, name).set_by_hand


def test_rollback_walks_back_through_champions_and_pins_the_result(tracking, logged):
    name = "delay_rollback"
    for hour in (1, 2, 3):
        _promote(tracking, name, logged, PROMOTE, hour)
    back = registry.rollback_champion(tracking, name, reason="v3 mis-scores JFK")
    assert back.version == 2 and back.tags["promoted_by"] == "contrail-rollback"
    assert registry.current_champion(tracking, name).set_by_hand  # the pipeline will not undo it
    assert "contrail.rolled_back_at" in tracking.get_model_version(name, "3").tags
    again = registry.rollback_champion(tracking, name, reason="v2 too")
    assert again.version == 1  # further back, not bouncing to 3
    with pytest.raises(LookupError):
        registry.rollback_champion(tracking, name, reason="nothing older")
    explicit = registry.rollback_champion(tracking, name, to_version=3, reason="fixed upstream",
                                          by="contrail-pipeline")
    assert explicit.version == 3 and not registry.current_champion(tracking, name).set_by_hand
    events = [(e["event"], e["champion_before"], e["champion_after"])
              for e in registry.promotion_history(tracking, name)]
    assert events[-3:] == [("rollback", "3", "2"), ("rollback", "2", "1"), ("rollback", "1", "3")]


def test_champion_is_re_evaluated_on_the_callers_test_window(tracking, logged, trained):
    split, model, _ = trained
    name = "delay_reeval"
    _promote(tracking, name, logged, PROMOTE, 1)
    champion = registry.current_champion(tracking, name)
    expected = training.evaluate(model, split.test)
    assert registry.champion_metrics_on(champion.model_uri, split.test) == expected


def test_promote_if_better_re_scores_the_champion_on_the_same_window(tracking, logged, trained):
    split, model, _ = trained
    name = "delay_end_to_end"
    test_metrics = training.evaluate(model, split.test)
    first, v1 = registry.promote_if_better(tracking, name, logged, test_df=split.test,
                                           challenger_metrics=test_metrics, margin=0.0, quality_passed=True)
    assert first.promote and v1.version == 1
    # the same model again: the re-scored champion ties it, and a tie keeps the incumbent
    second, v2 = registry.promote_if_better(tracking, name, logged, test_df=split.test,
                                            challenger_metrics=test_metrics, margin=0.0, quality_passed=True)
    assert not second.promote and "gain +0.0000" in second.reason
    assert v2.tags["contrail.metric.champion_test_roc_auc"] == v2.tags["contrail.metric.test_roc_auc"]
    assert tracking.get_registered_model(name).aliases == {"champion": 1, "challenger": 2}
