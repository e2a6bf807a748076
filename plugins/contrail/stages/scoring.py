"""Scoring's Airflow edge: score every published feature partition not yet scored by the
current champion (or, on a re-run, by a named registered version, over a range), with the
same build → publish protocol as features (a partition's predictions become visible only when
its manifest names them and ``_SUCCESS`` exists)."""

from __future__ import annotations

import io
import logging
from typing import Any

from contrail import catalog, connections
from contrail.reruns import Rerun

log = logging.getLogger(__name__)


def score(s3, bucket: str, *, feature_set: str, model_name: str, model: Any, model_version: str,
          run_id: str, threshold: float, rerun: Rerun = Rerun()) -> list[str]:
    """Score every published feature partition in ``rerun``'s range whose predictions were not
    made by this model version from this features build (with ``rebuild="all"``: every one in
    the range); returns the days scored. ``changed`` adds nothing here: a partition scored by
    another model version or features build is already pending.

    Per day: the parts go to a build named by the model version and the features digest (so a
    re-run writes the same keys), then the manifest and ``_SUCCESS`` publish it; the previous
    predictions stay readable until then.
    """
    from contrail import scoring

    done = catalog.published(s3, bucket, catalog.predictions_zone(model_name))
    scored = []
    features = catalog.published(s3, bucket, catalog.features_zone(feature_set))
    for dt in rerun.within(features):
        part = features[dt]
        marker = {"model_version": model_version, "features_digest": part.digest}
        previous = done.get(dt)
        pending = previous is None or {k: previous.manifest.get(k) for k in marker} != marker
        if not rerun.redoes(pending=pending, changed=False):
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
            "previous_build": previous_build, "reason": rerun.reason,
            "positive_rate": float(preds["label"].mean()) if len(preds) else None,
        }, marked=previous is not None)
        catalog.remove_stale_builds(s3, bucket, partition, keep=(build, previous_build))
        scored.append(dt.isoformat())
        log.info("scored %s dt=%s with %s v%s: %d rows", feature_set, dt, model_name, model_version,
                 len(preds))
    return scored


def score_task(context: dict) -> dict[str, Any]:
    """The ``score`` task: loads the champion (or the ``model_version`` param's registered
    version) once, through the allow-list, and sets the predictions event extra."""
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail import assets, registry
    from contrail.reruns import from_params

    cfg = connections.settings()
    params = context.get("params") or {}
    rerun = from_params(params)
    tracking_uri = connections.mlflow_tracking_uri()
    named = params.get("model_version")
    if named not in (None, ""):
        loaded = registry.load_version(cfg.model_name, str(named), tracking_uri=tracking_uri)
    else:
        loaded = registry.load_champion(cfg.model_name, tracking_uri=tracking_uri)
    if loaded is None:
        raise AirflowSkipException(f"no champion registered for {cfg.model_name} yet")
    scored = score(connections.s3(), cfg.bucket, feature_set=cfg.feature_set, model_name=cfg.model_name,
                   model=loaded.model, model_version=loaded.version, run_id=loaded.run_id,
                   threshold=loaded.threshold, rerun=rerun)
    extra = {"model_name": cfg.model_name, "model_version": loaded.version,
             "threshold": loaded.threshold, "dates": scored, "rerun": rerun.as_dict()}
    context["outlet_events"][assets.predictions()].extra = extra
    return extra
