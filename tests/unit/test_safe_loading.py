"""Every documented way to load a model refuses a tampered registered version.

A model is trained, logged and registered as champion in a real SQLite-backed MLflow
registry; then its stored artifact is swapped for one that needs a foreign type and its
MLmodel file is widened to vouch for that type. ``mlflow.pyfunc.load_model`` (which trusts the
MLmodel's list) loads it — which is why it is not a supported path — while the allow-list
refuses it on every path: ``registry.load_model``, ``load_version``, ``load_champion``, the
batch scoring task and the stream's champion scorer.
"""

from __future__ import annotations

import math
import os
from urllib.parse import urlparse

import mlflow
import pytest
import skops.io
import yaml
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from contrail import registry, training
from test_training import FAST, synthetic_features  # same directory: one schema for all tests

NAME = "flight_delay_tamper"


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-tamper")
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("tamper", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    frame = synthetic_features(days=16, per_day=40)
    split = training.split_by_date(frame, test_days=3, valid_days=3)
    model, _ = training.train(split.train, split.valid, FAST)
    threshold = training.decide_threshold(model, split.valid)
    metrics = training.evaluate(model, split.test)
    days = sorted(frame["dt"].unique())
    run = registry.log_training_run(
        model=model, params=FAST, metrics=metrics, split=split, threshold=threshold,
        partitions=[registry.FeaturePartition(d, f"v-{d}", f"s3://lake/features/flights_v1/dt={d}/") for d in days],
        feature_set="flights_v1", dag_id="training", dag_run_id="manual", git_commit="abc",
        job_version="0.1.0", quality={"passed": True})
    client = MlflowClient()
    _, version = registry.promote_if_better(client, NAME, run, test_df=split.test, challenger_metrics=metrics,
                                            margin=0.0, quality_passed=True, threshold=threshold)
    yield {"uri": uri, "client": client, "version": str(version.version), "model": model, "split": split,
           "threshold": threshold}
    mlflow.set_tracking_uri(previous)


def test_the_untampered_champion_loads_with_its_threshold(registered):
    champion = registry.load_champion(NAME, tracking_uri=registered["uri"])
    assert champion.version == registered["version"]
    assert champion.threshold == pytest.approx(registered["threshold"]) and champion.threshold != 0.5
    test = registered["split"].test
    assert (champion.predict_proba(test) == registered["model"].predict_proba(
        test.loc[:, list(training.FEATURES)])[:, 1]).all()


def test_a_version_without_a_threshold_is_not_served_at_a_silent_default(registered):
    client = registered["client"]
    run_id = client.get_model_version(NAME, registered["version"]).run_id
    bare = client.create_model_version(NAME, source=f"runs:/{run_id}/model", run_id=None)
    with pytest.raises(LookupError, match="no decision threshold"):
        registry.version_threshold(client, NAME, str(bare.version))


@pytest.fixture(scope="module")
def tampered(registered):
    """Swap the champion's stored model for one needing ``math.sqrt`` and widen its MLmodel."""
    client = registered["client"]
    local = urlparse(client.get_model_version_download_uri(NAME, registered["version"])).path
    spec_path = os.path.join(local, "MLmodel")
    with open(spec_path) as fh:
        spec = yaml.safe_load(fh)
    flavor = spec["flavors"]["sklearn"]
    bad = Pipeline([("extra", FunctionTransformer(math.sqrt)), *registered["model"].steps])
    skops.io.dump(bad, os.path.join(local, flavor["pickled_model"]))
    flavor["skops_trusted_types"] = sorted({*flavor.get("skops_trusted_types", []),
                                            *skops.io.get_untrusted_types(data=skops.io.dumps(bad))})
    with open(spec_path, "w") as fh:
        yaml.safe_dump(spec, fh)
    return registered


def test_the_tampered_model_vouches_for_itself_on_the_unsupported_pyfunc_path(tampered):
    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    steps = loaded.get_raw_model().steps
    assert steps[0][0] == "extra"  # the foreign step came in: why pyfunc is not a documented path


def test_every_documented_load_path_refuses_the_tampered_champion(tampered, monkeypatch):
    uri, version = tampered["uri"], tampered["version"]
    with pytest.raises(registry.UntrustedModelError, match="math.sqrt"):
        registry.load_model(f"models:/{NAME}@champion")
    with pytest.raises(registry.UntrustedModelError):
        registry.load_version(NAME, version, tracking_uri=uri)
    with pytest.raises(registry.UntrustedModelError):
        registry.load_champion(NAME, tracking_uri=uri)

    # the pipeline's two serving edges load through load_champion with the connection's URI
    from contrail import connections
    from contrail.stages import scoring as scoring_stage
    from contrail.stages import stream as stream_stage

    monkeypatch.setenv("CONTRAIL_MODEL_NAME", NAME)
    connections.settings.cache_clear()
    monkeypatch.setattr(connections, "mlflow_tracking_uri", lambda: uri)
    try:
        with pytest.raises(registry.UntrustedModelError):
            stream_stage._champion_scorer()
        with pytest.raises(registry.UntrustedModelError):
            scoring_stage.score_task({})
        with pytest.raises(registry.UntrustedModelError):  # a re-run naming the version: the same allow-list
            scoring_stage.score_task({"params": {"model_version": version}})
    finally:
        connections.settings.cache_clear()
