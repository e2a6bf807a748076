"""The MLflow registry tells the model's story: what it predicts from which features, and per
version why it was promoted or refused, against which champion, by which margin, and the
Airflow run that made it."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from contrail import model_story, registry, training


@pytest.fixture
def client(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    yield MlflowClient()
    mlflow.set_tracking_uri(previous)


def test_descriptions_say_what_why_against_whom_and_where(client):
    name = "delay_model"
    client.create_registered_model(name)
    experiment = client.create_experiment("story")
    run = client.create_run(experiment)
    version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_model_version_tag(name, version.version, "contrail.compared_with", "1")
    decision = registry.PromotionDecision(False, "challenger", "roc_auc 0.7010 does not beat 0.7100 + 0.005")
    model_story.tell_story(client, name, version, decision,
                        metrics={"test_roc_auc": 0.701, "champion_test_roc_auc": 0.71},
                        features=training.FEATURES, feature_set="flight_delay_v1",
                        window=["2013-01-01", "2013-01-31"], margin=0.005,
                        airflow_run_url="http://127.0.0.1:8080/dags/training/runs/manual__1")
    model = client.get_registered_model(name).description
    assert "arr_delay >= 15" in model and "flight_delay_v1" in model
    assert all(f"`{f}`" in model for f in training.FEATURES)
    text = client.get_model_version(name, version.version).description
    assert text.startswith("**Refused: stays @challenger** — roc_auc 0.7010 does not beat")
    assert "champion v1: roc_auc 0.7010 vs 0.7100 (difference -0.0090, margin required +0.0050)" in text
    assert "2013-01-01 … 2013-01-31" in text and "http://127.0.0.1:8080/dags/training/runs/manual__1" in text
