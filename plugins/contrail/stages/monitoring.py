"""Monitoring's Airflow edge: join each day's predictions (batch and stream) to the outcomes that
have landed since, publish a ``monitoring/<model>/dt=…`` partition per day, log the series to
MLflow (one monitoring run per model version, linked from the version's tags), and say whether
the champion degraded (:func:`contrail.monitoring.degradation`).

Consumes published predictions, stream predictions (``contrail.stream.ledger.read_predictions``),
the current landed flights version of each day (its ``arr_delay``), the published features of
the day (for drift) and the champion run's ``feature_profile.json``. A day is re-monitored only
when one of those inputs changed (the manifest's ``inputs`` marker).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from contrail import catalog, connections, lake

log = logging.getLogger(__name__)

EXPERIMENT = "contrail-monitoring"
RUN_TAG = "contrail.monitoring.version"     # on a monitoring run: the version it watches
VERSION_RUN_TAG = "contrail.monitoring_run_id"  # on the model version: its monitoring run
RETRAIN_TAG = "contrail.retrain_requested"  # on the model version: why retraining was asked


@dataclass(frozen=True)
class Monitored:
    days: list[str]
    champion: str | None
    retrain: str | None


def _profile(client, run_id: str) -> dict | None:
    import mlflow
    from mlflow.exceptions import MlflowException

    from contrail.registry import PROFILE_ARTIFACT

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILE_ARTIFACT}")
    except (MlflowException, OSError):
        return None  # trained before profiles were logged: PSI is reported as NaN


def monitor_day(s3, bucket: str, *, model_name: str, dt: date, landed_key: str,
                batch: catalog.PublishedPartition | None, features: catalog.PublishedPartition | None,
                profiles: dict[str, dict | None]):
    """One day's rows (:data:`contrail.monitoring.DAILY_COLUMNS`), batch and stream."""
    import pandas as pd

    from contrail import monitoring
    from contrail.stages.quality import read_landed
    from contrail.stream.ledger import read_predictions

    outcome = monitoring.outcomes(read_landed(s3, bucket, lake.read_json(s3, bucket, landed_key)))
    feature_rows = catalog.read_published(s3, bucket, features) if features is not None else None
    frames = []
    sources = [("batch", catalog.read_published(s3, bucket, batch) if batch is not None else None),
               ("stream", read_predictions(s3, bucket, model_name, dt))]
    for source, preds in sources:
        if preds is None or preds.empty:
            continue
        for version, rows in preds.groupby(preds["model_version"].astype(str)):
            frames.append(monitoring.daily_metrics(rows, outcome, source=source, features=feature_rows,
                                                   profile=profiles.get(version)))
    return pd.concat(frames, ignore_index=True) if frames else None


def _publish(s3, bucket: str, model_name: str, dt: date, rows, inputs: dict, previous) -> None:
    buf = io.BytesIO()
    rows.to_parquet(buf, index=False)
    partition = catalog.monitoring_partition(model_name, dt)
    build = catalog.build_id(inputs)
    key = catalog.build_prefix(partition, build) + catalog.part_name(0)
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
    previous_build = previous.manifest.get("build") if previous else None
    catalog.publish_partition(s3, bucket, partition, {
        "dt": dt.isoformat(), "model_name": model_name, "rows": len(rows), "inputs": inputs,
        "build": build, "parts": [key], "previous_build": previous_build,
    }, marked=previous is not None)
    catalog.remove_stale_builds(s3, bucket, partition, keep=(build, previous_build))


def _log_series(client, model_name: str, version: str, run_id: str, series) -> str:
    """Log one version's daily series to its monitoring run (created once, linked from the version)."""
    from mlflow.entities import Metric

    mv = client.get_model_version(model_name, version)
    monitoring_run = mv.tags.get(VERSION_RUN_TAG)
    if monitoring_run is None:
        experiment = client.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
        run = client.create_run(experiment_id, run_name=f"monitoring {model_name} v{version}",
                                tags={RUN_TAG: version, "contrail.model_name": model_name,
                                      "contrail.training_run_id": run_id})
        monitoring_run = run.info.run_id
        client.set_model_version_tag(model_name, version, VERSION_RUN_TAG, monitoring_run)
    metrics = []
    for row in series.itertuples(index=False):
        day = date.fromisoformat(row.dt)
        # step = day of the year's ordinal, timestamp = that day: the UI plots the series by day
        step = day.toordinal() - date(day.year, 1, 1).toordinal() + 1
        at = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000)
        for name in ("roc_auc", "brier", "ece", "positive_rate", "predicted_positive_rate", "psi_max"):
            value = float(getattr(row, name))
            if value == value:  # NaN is not a point on the curve
                metrics.append(Metric(f"{row.source}_{name}", value, at, step))
    for start in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
        client.log_batch(monitoring_run, metrics=metrics[start:start + 900])
    return monitoring_run


def monitor(s3, bucket: str, *, model_name: str, feature_set: str, mlflow_client, rule) -> Monitored:
    """Monitor every day with predictions and landed outcomes whose inputs changed since its
    last monitoring build; then judge the champion's batch series with ``rule``."""
    import pandas as pd

    from contrail import monitoring, registry

    champion = registry.current_champion(mlflow_client, model_name)
    batch = catalog.published(s3, bucket, catalog.predictions_zone(model_name))
    stream: dict[date, list[str]] = {}
    for obj in lake.list_objects(s3, bucket, catalog.stream_predictions_prefix(model_name)):
        if "/dt=" in obj.key and obj.key.endswith(".parquet"):
            stream.setdefault(date.fromisoformat(obj.key.split("/dt=")[1][:10]), []).append(obj.etag)
    landed = {date.fromisoformat(dt): key for dt, key in
              catalog.current_landed_manifests(s3, bucket, "flights").items()}
    features = catalog.published(s3, bucket, catalog.features_zone(feature_set))
    done = catalog.published(s3, bucket, catalog.monitoring_zone(model_name))
    profiles: dict[str, dict | None] = {}
    runs: dict[str, str] = {}
    new_rows = []
    for dt in sorted((set(batch) | set(stream)) & set(landed)):
        inputs = {"batch": batch[dt].digest if dt in batch else None, "landed": landed[dt],
                  "features": features[dt].digest if dt in features else None,
                  "stream": sorted(stream.get(dt, [])) or None,
                  "champion": champion.version if champion else None}
        if dt in done and done[dt].manifest.get("inputs") == inputs:
            continue
        versions = {str(batch[dt].manifest.get("model_version"))} if dt in batch else set()
        for version in versions | ({champion.version} if champion else set()):
            if version and version not in profiles:
                runs[version] = mlflow_client.get_model_version(model_name, version).run_id
                profiles[version] = _profile(mlflow_client, runs[version])
        rows = monitor_day(s3, bucket, model_name=model_name, dt=dt, landed_key=landed[dt],
                           batch=batch.get(dt), features=features.get(dt), profiles=profiles)
        if rows is None:
            continue
        _publish(s3, bucket, model_name, dt, rows, inputs, done.get(dt))
        new_rows.append(rows)
        log.info("monitored %s dt=%s: %s", model_name, dt, rows.to_dict("records"))
    for version, series in (pd.concat(new_rows).groupby("model_version") if new_rows else ()):
        if version not in runs:
            runs[version] = mlflow_client.get_model_version(model_name, version).run_id
        _log_series(mlflow_client, model_name, version, runs[version], series)

    reason = None
    if champion is not None:
        history = monitoring_series(s3, bucket, model_name, version=champion.version, source="batch")
        reason = monitoring.degradation(history, rule)
        already = mlflow_client.get_model_version(model_name, champion.version).tags.get(RETRAIN_TAG)
        if reason is not None and already is not None:
            log.info("champion v%s degraded (%s), retraining already requested: %s", champion.version, reason, already)
            reason = None
        elif reason is not None:
            mlflow_client.set_model_version_tag(model_name, champion.version, RETRAIN_TAG, reason[:5000])
    return Monitored(days=[r["dt"].iloc[0] for r in new_rows], champion=champion.version if champion else None,
                     retrain=reason)


def monitoring_series(s3, bucket: str, model_name: str, *, version: str | None = None,
                      source: str | None = None):
    """Every published monitoring row (of one version and source), ordered by day."""
    import pandas as pd

    from contrail import monitoring

    parts = catalog.published(s3, bucket, catalog.monitoring_zone(model_name))
    frames = [catalog.read_published(s3, bucket, p) for _, p in sorted(parts.items())]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(monitoring.DAILY_COLUMNS))
    if version is not None:
        rows = rows.loc[rows["model_version"].astype(str) == str(version)]
    if source is not None:
        rows = rows.loc[rows["source"] == source]
    return rows.sort_values("dt").reset_index(drop=True)


def monitor_task(context: dict) -> dict[str, Any]:
    """The ``monitor`` task: returns ``{"days", "champion", "retrain"}`` (retrain: the reason, or None)."""
    from contrail import assets, monitoring

    cfg = connections.settings()
    params = context["params"]
    rule = monitoring.DegradationRule(auc_floor=float(params["auc_floor"]), days=int(params["auc_days"]),
                                      psi_limit=float(params["psi_limit"]), min_rows=int(params["min_rows"]))
    result = monitor(connections.s3(), cfg.bucket, model_name=cfg.model_name, feature_set=cfg.feature_set,
                     mlflow_client=connections.mlflow_client(), rule=rule)
    extra = {"model_name": cfg.model_name, "days": result.days, "champion": result.champion,
             "retrain": result.retrain}
    context["outlet_events"][assets.monitoring()].extra = extra
    return extra
