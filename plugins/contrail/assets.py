"""The Airflow Assets that join contrail's stages. A stage's DAG is scheduled on its
upstream asset and emits its own, carrying partition metadata in the event's ``extra``
(dt, version, manifest URI, row counts): replace a stage and its neighbours do not notice.
"""

from __future__ import annotations

from airflow.sdk import Asset

from contrail import catalog
from contrail.settings import load_settings

_settings = load_settings()
BUCKET = _settings.bucket


def landing(dataset: str) -> Asset:
    return Asset(name=f"landing_{dataset}", uri=f"s3://{BUCKET}/{catalog.landing_zone(dataset)}", group="landing")


def validated(dataset: str) -> Asset:
    return Asset(name=f"validated_{dataset}", uri=f"s3://{BUCKET}/{catalog.validated_zone(dataset)}", group="validated")


def features(feature_set: str = _settings.feature_set) -> Asset:
    return Asset(name=f"features_{feature_set}", uri=f"s3://{BUCKET}/{catalog.features_zone(feature_set)}",
                 group="features")


def model(model_name: str = _settings.model_name) -> Asset:
    return Asset(name=f"model_{model_name}", uri=f"s3://{BUCKET}/{catalog.model_zone(model_name)}",
                 group="model")


def predictions(model_name: str = _settings.model_name) -> Asset:
    return Asset(name=f"predictions_{model_name}", uri=f"s3://{BUCKET}/{catalog.predictions_zone(model_name)}",
                 group="predictions")


def monitoring(model_name: str = _settings.model_name) -> Asset:
    return Asset(name=f"monitoring_{model_name}", uri=f"s3://{BUCKET}/{catalog.monitoring_zone(model_name)}",
                 group="monitoring")
