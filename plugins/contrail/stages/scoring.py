"""Scoring's Airflow edge: score every published feature partition not yet scored by the
current champion, with the same build → publish protocol as features (a partition's
predictions become visible only when its manifest names them and ``_SUCCESS`` exists)."""

from __future__ import annotations

import io
import logging
from typing import Any

from contrail import catalog, connections

log = logging.getLogger(__name__)


def score(s3, bucket: str, *, feature_set: str, model_name: str, model: Any, model_version: str,
          run_id: str, threshold: float) -> list[str]:
    """Score every published feature partition whose predictions were not made by this model
    version from this features build; returns the days scored.

    Per day: the parts go to a build named by the model version and the features digest (so a
    re-run writes the same keys), then the manifest and ``_SUCCESS`` publish it; the previous
    predictions stay readable until then.
    """
    from contrail import scoring

    done = catalog.published(s3, bucket, catalog.predictions_zone(model_name))
    scored = []
    for dt, part in sorted(catalog.published(s3, bucket, catalog.features_zone(feature_set)).items()):
        marker = {"model_version": model_version, "features_digest": part.digest}
        previous = done.get(dt)
        if previous is not None and {k: previous.manifest.get(k) for k in marker} == marker:
            continue
        preds = scoring.score(model, catalog.read_published(s3, bucket, part), model_name=model_name,
                              model_version=model_version, run_id=run_id, threshold=threshold)
        buf = io.BytesIO()
        preds.to_parquet(buf, index=False)
        partition = catalog.predictions_partition(model_name, dt)
        build = catalog.predictions_build(model_version, part.digest)
        key = catalog.build_prefix(partition, build) + catalog.part_name(0)
        s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        previous_build = previous.manifest.get("build") if previous else None
        catalog.publish_partition(s3, bucket, partition, {
            **marker, "dt": dt.isoformat(), "model_name": model_name, "rows": len(preds),
            "run_id": run_id, "threshold": threshold, "features_uri": part.uri, "build": build, "parts": [key],
            "previous_build": previous_build,
            "positive_rate": float(preds["label"].mean()) if len(preds) else None,
        }, marked=previous is not None)
        catalog.remove_stale_builds(s3, bucket, partition, keep=(build, previous_build))
        scored.append(dt.isoformat())
        log.info("scored %s dt=%s with %s v%s: %d rows", feature_set, dt, model_name, model_version,
                 len(preds))
    return scored


def score_task(context: dict) -> dict[str, Any]:
    """The ``score`` task: loads the champion once and sets the predictions event extra."""
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail import assets, registry

    cfg = connections.settings()
    champion = registry.load_champion(cfg.model_name, tracking_uri=connections.mlflow_tracking_uri())
    if champion is None:
        raise AirflowSkipException(f"no champion registered for {cfg.model_name} yet")
    scored = score(connections.s3(), cfg.bucket, feature_set=cfg.feature_set, model_name=cfg.model_name,
                   model=champion.model, model_version=champion.version, run_id=champion.run_id,
                   threshold=champion.threshold)
    extra = {"model_name": cfg.model_name, "model_version": champion.version,
             "threshold": champion.threshold, "dates": scored}
    context["outlet_events"][assets.predictions()].extra = extra
    return extra
