"""Re-runs over a range through the real Airflow API, on the thin pipeline's days: features
rebuilt for two days with ``rebuild=all`` (the third untouched), scoring a range with a named
registered version, and a walk-forward training backtest logged to MLflow (nothing registered).

Needs the batch pipeline's published features and champion: run alone, this module runs it
through the ``pipeline_run`` fixture first.
"""

from __future__ import annotations

import pytest

from contrail import catalog, lake

from .test_pipeline_e2e import DAYS, pipeline_run  # noqa: F401 - the batch pipeline fixture

pytestmark = pytest.mark.e2e

TIMEOUT = 900


def _wait(predicate, what: str, timeout: float = TIMEOUT):
    from contrail.demo import wait_for

    return wait_for(predicate, what, timeout)


def _finished(api, dag_id: str, run_id: str) -> dict:
    def state():
        run = api.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        return run if run["state"] in ("success", "failed") else None

    run = _wait(state, f"{dag_id} run {run_id}")
    assert run["state"] == "success", (dag_id, run_id, api.task_instances(dag_id, run_id))
    return run


def _idle(api, dag_id: str) -> bool:
    return not [r for r in api.runs(dag_id) if r["state"] in ("queued", "running")]


@pytest.fixture(scope="module")
def api(stack, pipeline_run):
    from contrail.stack.api import AirflowClient

    return AirflowClient.for_local(stack)


def _manifest(stack, zone_partition):
    part = catalog.published_one(lake.s3_client(stack), stack.bucket, zone_partition)
    assert part is not None, zone_partition
    return part.manifest


def test_features_rebuild_all_over_two_days_leaves_the_third_untouched(stack, api):
    partition = lambda d: catalog.features_partition(stack.feature_set, d)  # noqa: E731
    before = {d: _manifest(stack, partition(d))["build"] for d in DAYS}
    conf = {"from_date": DAYS[0].isoformat(), "to_date": DAYS[1].isoformat(), "rebuild": "all",
            "reason": "e2e: rebuild two days"}
    run = api.trigger("features", conf=conf)
    _finished(api, "features", run["dag_run_id"])
    after = {d: _manifest(stack, partition(d)) for d in DAYS}
    for d in DAYS[:2]:
        assert after[d]["build"] != before[d] and after[d]["previous_build"] == before[d]
        assert (after[d]["reason"], after[d]["rebuild"]) == ("e2e: rebuild two days", "all")
        assert after[d]["job_version"] and after[d]["suite_version"]
    assert after[DAYS[2]]["build"] == before[DAYS[2]]
    # the new features builds reach scoring through the asset: the champion rescores those days
    predictions = lambda d: catalog.predictions_partition(stack.model_name, d)  # noqa: E731
    digests = {d: catalog.published_one(lake.s3_client(stack), stack.bucket, partition(d)).digest for d in DAYS[:2]}
    _wait(lambda: all(_manifest(stack, predictions(d))["features_digest"] == digests[d] for d in DAYS[:2]),
          "the champion rescoring the rebuilt days")
    _wait(lambda: _idle(api, "scoring"), "scoring to settle")


def test_scoring_a_range_with_a_named_version(stack, api):
    import mlflow

    from contrail import registry

    client = mlflow.MlflowClient(tracking_uri=stack.mlflow_url)
    champion = client.get_model_version_by_alias(stack.model_name, registry.CHAMPION)
    # a second registered version (the champion's artifact), left as challenger
    other = registry.register_and_promote(
        client, stack.model_name, champion.run_id,
        registry.PromotionDecision(False, registry.CHALLENGER, "e2e: a version to re-score with"),
        model_uri=champion.source)
    client.set_model_version_tag(stack.model_name, str(other.version), registry.THRESHOLD_TAG,
                                 champion.tags[registry.THRESHOLD_TAG])
    _wait(lambda: _idle(api, "scoring"), "scoring to settle")
    conf = {"from_date": DAYS[1].isoformat(), "to_date": DAYS[2].isoformat(), "model_version": str(other.version),
            "reason": "e2e: compare a version"}
    run = api.trigger("scoring", conf=conf)
    _finished(api, "scoring", run["dag_run_id"])
    s3 = lake.s3_client(stack)
    versions = {}
    for d in DAYS:
        part = catalog.published_one(s3, stack.bucket, catalog.predictions_partition(stack.model_name, d))
        versions[d] = set(catalog.read_published(s3, stack.bucket, part)["model_version"]) | {part.manifest["model_version"]}
    assert versions == {DAYS[0]: {str(champion.version)}, DAYS[1]: {str(other.version)}, DAYS[2]: {str(other.version)}}


def test_a_training_backtest_logs_child_runs_and_the_auc_plot_and_registers_nothing(stack, api):
    import mlflow

    from contrail import backtest

    client = mlflow.MlflowClient(tracking_uri=stack.mlflow_url)
    versions_before = len(client.search_model_versions(f"name = '{stack.model_name}'"))
    conf = {"mode": "backtest", "from_date": DAYS[1].isoformat(), "to_date": DAYS[2].isoformat(),
            "backtest_week_days": 1, "window_days": 2, "valid_days": 1, "hgb_max_iter": 20,
            "reason": "e2e: backtest"}
    run = api.trigger("training", conf=conf)
    _finished(api, "training", run["dag_run_id"])
    states = {t["task_id"]: t["state"] for t in api.task_instances("training", run["dag_run_id"])}
    assert states == {"choose_mode": "success", "backtest": "success", "train": "skipped"}

    (parent,) = mlflow.MlflowClient(stack.mlflow_url).search_runs(
        [client.get_experiment_by_name("contrail-backtest").experiment_id],
        filter_string=f"tags.`contrail.airflow.run_id` = '{run['dag_run_id']}' and tags.`contrail.backtest` = 'parent'")
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    # 2013-01-02 has one day before it (validation only): skipped; 2013-01-03 trains on 01-01, validates on 01-02
    assert [c.data.params["week_start"] for c in children] == ["2013-01-03"]
    assert children[0].data.params["train_last"] == "2013-01-01" and children[0].data.params["valid_last"] == "2013-01-02"
    assert 0.0 <= children[0].data.metrics["test_roc_auc"] <= 1.0
    assert parent.data.metrics["mean_test_roc_auc"] == children[0].data.metrics["test_roc_auc"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "backtest")}
    assert {backtest.PLOT_ARTIFACT, backtest.TABLE_ARTIFACT} <= artifacts
    assert len(client.search_model_versions(f"name = '{stack.model_name}'")) == versions_before
