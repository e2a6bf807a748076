"""The whole thin pipeline through the real stack: simulator drops → landing DAGs (scheduler,
deferred sensors in the triggerer) → quality (GX) → features (spark-submit) → training
(MLflow server + registry) → scoring; then a stop/start of the stack loses nothing.
"""

from __future__ import annotations

from datetime import date

import pytest

from contrail import lake

pytestmark = pytest.mark.e2e

DAYS = [date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)]
REAL_ROWS = {date(2013, 1, 1): 842, date(2013, 1, 2): 943, date(2013, 1, 3): 914}


@pytest.fixture(scope="module")
def pipeline_run(stack):
    from contrail.demo import run_pipeline

    return run_pipeline(stack, DAYS, timeout=1200)


def _assert_lake_and_registry(settings):
    import mlflow
    import pandas as pd

    s3 = lake.s3_client(settings)
    bucket = settings.bucket
    for day in DAYS:
        manifest = lake.read_json(s3, bucket, lake.landing_prefix("flights", day, 1) + "_manifest.json")
        assert manifest["rows"] == REAL_ROWS[day]
        assert manifest["dt"] == day.isoformat()
        pointer = lake.read_json(s3, bucket, lake.validated_pointer_key("flights", day))
        assert pointer["version"] == 1
        prefix = lake.features_prefix(settings.feature_set, day)
        assert lake.exists(s3, bucket, prefix + "_SUCCESS")
        features = lake.read_json(s3, bucket, prefix + "_manifest.json")
        assert features["rows"] == REAL_ROWS[day]
        assert any(lake.list_objects(s3, bucket, lake.predictions_prefix(settings.model_name, day)))

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_url)
    model = client.get_registered_model(settings.model_name)
    assert "champion" in model.aliases
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    run = client.get_run(champion.run_id)
    assert run.data.tags["contrail.airflow.dag_id"] == "training"
    assert 0.0 <= run.data.metrics["test_roc_auc"] <= 1.0

    # any client can load the champion and predict on a published feature partition
    mlflow.set_tracking_uri(settings.mlflow_url)
    loaded = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    frame = _features_frame(s3, bucket, settings, DAYS[-1])
    preds = loaded.predict(frame[loaded.metadata.get_input_schema().input_names()])
    assert len(preds) == len(frame) and pd.Series(preds).notna().all()


def _features_frame(s3, bucket, settings, day):
    import io

    import pandas as pd

    prefix = lake.features_prefix(settings.feature_set, day)
    parts = [o.key for o in lake.list_objects(s3, bucket, prefix) if o.key.endswith(".parquet")]
    return pd.concat([pd.read_parquet(io.BytesIO(lake.read_bytes(s3, bucket, k))) for k in parts])


def test_pipeline_runs_end_to_end_through_airflow(stack, pipeline_run):
    from contrail.stack.api import AirflowClient

    api = AirflowClient.for_local(stack)
    for dag_id in ("landing_flights", "landing_weather"):
        done = {r["logical_date"][:10]: r["state"] for r in api.runs(dag_id) if r["state"] != "running"}
        for day in DAYS:
            assert done.get(day.isoformat()) == "success", (dag_id, day, done)
    for dag_id in ("quality", "features", "scoring", "training"):
        states = [r["state"] for r in api.runs(dag_id)]
        assert "success" in states and "failed" not in states, (dag_id, states)
    _assert_lake_and_registry(stack)


def test_stop_and_start_loses_nothing(stack, pipeline_run):
    from contrail.stack import local
    from contrail.stack.api import AirflowClient

    before = {r["dag_run_id"]: r["state"] for r in AirflowClient.for_local(stack).runs("features")}
    local.stop(stack)
    assert local.running(stack) == {}
    local.start(stack)
    after = {r["dag_run_id"]: r["state"] for r in AirflowClient.for_local(stack).runs("features")}
    assert {k: v for k, v in after.items() if k in before} == before
    _assert_lake_and_registry(stack)
