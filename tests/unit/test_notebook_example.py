"""examples/notebook_champion.py runs against a real SQLite MLflow registry and a moto lake with
published feature partitions, and the pipeline respects the champion it promotes by hand."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from contrail import catalog, registry, training
from test_training import FAST, synthetic_features  # same directory: one schema for all tests

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notebook_champion.py"
BUCKET, MODEL, FEATURE_SET = "contrail-notebook", "flight_delay_nb", "flights_v1"


def _publish_features(s3, frame) -> None:
    for dt, rows in frame.groupby("dt"):
        partition = catalog.features_partition(FEATURE_SET, dt)
        key = catalog.build_prefix(partition, "b1") + catalog.part_name(0)
        buf = io.BytesIO()
        rows.to_parquet(buf, index=False)
        s3.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
        catalog.publish_partition(s3, BUCKET, partition, {"dt": dt, "build": "b1", "parts": [key]})


def _pipeline_version(client, frame, max_iter: int):
    """A version registered the way the training stage does it."""
    split = training.split_by_date(frame, test_days=7, valid_days=7)
    params = {**FAST, "max_iter": max_iter}
    model, _ = training.train(split.train, split.valid, params)
    test = training.evaluate(model, split.test)
    threshold = training.decide_threshold(model, split.valid)
    run = registry.log_training_run(
        model=model, params=params, metrics={f"test_{k}": v for k, v in test.items()}, split=split,
        partitions=[registry.FeaturePartition(d, d, f"s3://{BUCKET}/{d}") for d in sorted(frame["dt"].unique())],
        feature_set=FEATURE_SET, dag_id="training", dag_run_id=f"run-{max_iter}", git_commit="x",
        job_version="x", quality={"passed": True}, threshold=threshold)
    return registry.promote_if_better(client, MODEL, run, test_df=split.test, challenger_metrics=test,
                                      margin=0.0, quality_passed=True, threshold=threshold)


def test_the_notebook_path_lists_compares_registers_and_promotes_and_the_pipeline_respects_it(moto_s3, tmp_path):
    moto_s3.create_bucket(Bucket=BUCKET)
    frame = synthetic_features(days=28, per_day=50)
    _publish_features(moto_s3, frame)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("p", artifact_location=(tmp_path / "a").as_uri()))
    # the example logs to experiment "notebook": created here so its artifacts stay in tmp_path
    mlflow.create_experiment("notebook", artifact_location=(tmp_path / "nb").as_uri())
    client = MlflowClient(uri)
    _pipeline_version(client, frame, max_iter=5)
    _pipeline_version(client, frame, max_iter=40)

    spec = importlib.util.spec_from_file_location("notebook_champion", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.main(["--tracking-uri", uri, "--bucket", BUCKET, "--model", MODEL, "--days", "28"], s3=moto_s3)

    assert list(out["versions"]["version"]) == [1, 2]
    assert out["versions"]["test_roc_auc"].between(0.5, 1).all() and out["versions"]["threshold"].notna().all()
    assert set(out["compared"]["version"]) == {"1", "2"} and (out["compared"]["rows"] > 0).all()
    mine = out["mine"]
    assert mine == "3" and out["champion"].version == "3" and out["champion"].set_by_hand
    assert client.get_model_version(MODEL, mine).tags[registry.THRESHOLD_TAG]
    assert client.get_run(client.get_model_version(MODEL, mine).run_id).data.params["model_type"] == "logistic_regression"

    # the next pipeline training, however good, only becomes challenger
    decision, version = _pipeline_version(client, frame, max_iter=60)
    assert not decision.promote and "set by hand" in decision.reason
    assert client.get_registered_model(MODEL).aliases == {"champion": 3, "challenger": int(version.version)}
    assert registry.load_champion(MODEL, tracking_uri=uri).version == "3"
