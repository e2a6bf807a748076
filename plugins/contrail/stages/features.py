"""The feature stage's Airflow edge: plan what is pending, run the Spark job (any runner), then
audit and publish.

Write, audit, publish: the plan names, per target day, a build prefix
(``features/<set>/dt=…/b=<build>/``) that no reader looks at; the job writes its parts and a
staged manifest there; :func:`audit_and_publish` runs the ``features`` gate on exactly those
parts and publishes only the passing days (:func:`contrail.catalog.publish_partition`). A job
that fails at any point publishes nothing; a day that fails its gate keeps its previous build.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

from contrail import catalog, connections, lake, online_store
from contrail.reruns import PENDING, Rerun
from contrail.settings import DATASETS

log = logging.getLogger(__name__)

LOOKBACK_DAYS = 28
AUDIT_CHUNK = 31  # staged days read and gated together: a month of features in memory at a time


def validated_inputs(s3, bucket: str, dataset: str) -> dict[date, dict]:
    """dt -> validated pointer for every validated partition of ``dataset``."""
    out = {}
    for obj in lake.list_objects(s3, bucket, catalog.validated_zone(dataset)):
        if obj.key.endswith("/" + catalog.POINTER):
            pointer = lake.read_json(s3, bucket, obj.key)
            out[date.fromisoformat(pointer["dt"])] = {
                "version": pointer["version"], "manifest": pointer["manifest_uri"],
                "objects": [lake.s3_uri(bucket, k) for k in pointer["objects"]],
            }
    return out


def _input_versions(inputs: Mapping) -> dict[str, dict[str, int]]:
    return {ds: {d: int(entry["version"]) for d, entry in days.items()} for ds, days in inputs.items()}


def pending_feature_dates(validated: dict[str, dict[date, dict]], built: dict[date, dict],
                          *, lookback_days: int = LOOKBACK_DAYS) -> list[date]:
    """Dates validated for every dataset whose published features are missing, or were built
    from inputs (own day or any lookback day) other than today's validated versions — so a
    late or corrected partition also rebuilds the later days whose windows it falls in (pure).
    """
    from contrail.features import plan_features

    common = set.intersection(*(set(v) for v in validated.values())) if validated else set()
    pending = []
    for dt in sorted(common):
        expected = plan_features(validated, [dt], lookback_days, feature_set="", job_version="",
                                 bucket="", datasets=tuple(validated))["inputs"]
        if built.get(dt) != _input_versions(expected):
            pending.append(dt)
    return pending


def awaiting_validation(s3, bucket: str, dataset: str) -> set[date]:
    """Days of ``dataset`` on their way to a quality result: dropped and not landed yet (nor
    rejected by landing), or landed in a version with no quality result yet. The landing or
    quality run on its way emits the asset that leads to the next features run."""
    manifest_keys, result_keys = catalog.validation_keys(s3, bucket, dataset)
    dropped = [o.key for o in lake.list_objects(s3, bucket, catalog.incoming_zone(dataset))]
    rejected = [o.key for o in lake.list_objects(s3, bucket, catalog.quarantine_zone(dataset))]
    on_their_way = {pv.dt for pv in catalog.pending_validation(manifest_keys, result_keys)}
    on_their_way |= set(catalog.awaiting_landing(dataset, dropped, manifest_keys, rejected))
    return {date.fromisoformat(dt) for dt in on_their_way}


def held_back(targets: Collection[date], awaiting: Mapping[str, Collection[date]], *,
              lookback_days: int = LOOKBACK_DAYS) -> set[date]:
    """The targets whose build would read a partition still awaiting validation (pure): its own
    day in any dataset, or a day of its lookback window in a dataset read with one.

    Built now, such a day would be built again once that partition is judged (its window, or its
    own version, changes), so it waits for the quality run on its way: every day is built once,
    from judged inputs, also when validations finish out of order (a retried quality task). The
    quality run that judges the partition emits the asset that schedules the next features run.
    """
    from contrail.features import lookback_span

    held = set()
    for dt in targets:
        for dataset, days in awaiting.items():
            span = timedelta(days=lookback_span(dataset, lookback_days))
            if any(dt - span <= d <= dt for d in days):
                held.add(dt)
                break
    return held


def built_features(s3, bucket: str, feature_set: str) -> dict[date, dict]:
    """dt -> {dataset: {input dt: version}} of published feature partitions."""
    return {dt: _input_versions(manifest.get("inputs", {}))
            for dt, manifest in published_manifests(s3, bucket, feature_set).items()}


def published_manifests(s3, bucket: str, feature_set: str) -> dict[date, dict]:
    """dt -> the published manifest of every feature partition."""
    return {dt: part.manifest
            for dt, part in catalog.published(s3, bucket, catalog.features_zone(feature_set)).items()}


def dates_to_build(validated: dict[str, dict[date, dict]], manifests: Mapping[date, Mapping[str, Any]],
                   rerun: Rerun, *, job_version: str | None = None, suite_version: str | None = None,
                   lookback_days: int = LOOKBACK_DAYS) -> list[date]:
    """The days a run rebuilds under ``rerun`` (pure): in its range, the pending days
    (:func:`pending_feature_dates`); with ``changed`` also the days whose published manifest
    was built by another feature-job version (``job_version``) or judged by another
    ``features`` suite version; with ``all`` every day validated for every dataset."""
    built = {dt: _input_versions(m.get("inputs", {})) for dt, m in manifests.items()}
    pending = set(pending_feature_dates(validated, built, lookback_days=lookback_days))
    common = set.intersection(*(set(v) for v in validated.values())) if validated else set()
    out = []
    for dt in rerun.within(common):
        manifest = manifests.get(dt)
        changed = manifest is not None and (manifest.get("job_version") != job_version
                                            or manifest.get("suite_version") != suite_version)
        if rerun.redoes(pending=dt in pending, changed=changed):
            out.append(dt)
    return out


def plan(s3, bucket: str, *, feature_set: str, run_id: str, artifact_dir: Path,
         rerun: Rerun = Rerun()) -> dict:
    """Write the plan JSON for every date ``rerun`` asks for (by default: every pending date);
    returns its URI, the targets, their build and the request (its reason goes into the
    manifests :func:`audit_and_publish` publishes)."""
    from contrail.features import plan_features
    from contrail_spark.package import build_artifact, upload_artifact

    validated = {ds: validated_inputs(s3, bucket, ds) for ds in DATASETS}
    manifests = published_manifests(s3, bucket, feature_set)
    artifact = job_version = version_of_suite = None
    if rerun.rebuild != PENDING:  # "changed" compares versions; build the artifact to know its hash
        from contrail.stages.quality import suite_version

        artifact = build_artifact(artifact_dir)
        job_version, version_of_suite = artifact.stem.rsplit("-", 1)[-1], suite_version("features")
    wanted = dates_to_build(validated, manifests, rerun, job_version=job_version,
                            suite_version=version_of_suite)
    # a day reading a partition still being landed or judged waits for the runs on their way
    awaiting = {ds: awaiting_validation(s3, bucket, ds) for ds in DATASETS}
    held = sorted(held_back(wanted, awaiting))
    targets = [dt for dt in wanted if dt not in held]
    if held:
        log.info("features: holding back %d date(s) until the partitions they read are judged (%s): %s",
                 len(held), {ds: sorted(d.isoformat() for d in days) for ds, days in awaiting.items() if days},
                 [d.isoformat() for d in held][:20])
    log.info("features: %d date(s) to build (%s): %s", len(targets), rerun.as_dict(),
             [d.isoformat() for d in targets][:20])
    if not targets:
        return {"targets": []}
    artifact = artifact or build_artifact(artifact_dir)
    artifact_uri = upload_artifact(s3, bucket, artifact, catalog.spark_artifact_key(artifact.name))
    job_version = artifact.stem.rsplit("-", 1)[-1]
    # one build per run: a retry of this run rewrites the same (unpublished) build
    build = catalog.build_id(job_version, run_id, sorted(d.isoformat() for d in targets))
    planned = plan_features(validated, targets, lookback_days=LOOKBACK_DAYS, feature_set=feature_set,
                            job_version=job_version, bucket=bucket, build=build)
    body = lake.json_bytes(planned)
    plan_key = catalog.feature_plan_key(feature_set, lake.sha256_hex(body)[:16])
    s3.put_object(Bucket=bucket, Key=plan_key, Body=body)
    return {"targets": planned["targets"], "plan_uri": lake.s3_uri(bucket, plan_key),
            "artifact_uri": artifact_uri, "job_version": job_version, "build": build,
            "rerun": rerun.as_dict()}


def audit_and_publish(s3, bucket: str, planned: Mapping[str, Any], *, feature_set: str,
                      gate_factory: Callable[[], Any]) -> dict[str, Any]:
    """Gate every staged target with the ``features`` suite; publish the passing ones.

    Returns ``{"rows", "warnings", "failed"}``: ``failed`` holds the summaries of the days that
    broke a critical rule (unpublished; their previous build, if any, stays readable). Raises
    ``RuntimeError`` naming a target the job did not stage (a retry may fix it).
    """
    build = planned["build"]
    staged = {}
    for dt in planned["targets"]:
        key = catalog.staged_manifest_key(catalog.features_partition(feature_set, dt), build)
        if not lake.exists(s3, bucket, key):
            raise RuntimeError(f"feature partition dt={dt} was not staged by the job "
                               f"(no s3://{bucket}/{key}); nothing was published")
        staged[dt] = lake.read_json(s3, bucket, key)
    from contrail.stages.quality import suite_version

    gate = gate_factory()
    version_of_suite = suite_version("features")
    # why this build was made (a re-run's request); a scheduled run records the defaults
    request = planned.get("rerun") or Rerun().as_dict()
    rerun_record = {"reason": request.get("reason"), "rebuild": request.get("rebuild", PENDING)}
    rows, warnings, failed = {}, 0, []
    days = list(staged)
    for start in range(0, len(days), AUDIT_CHUNK):
        chunk = days[start:start + AUDIT_CHUNK]
        # a catch-up's days share one GX validation, each judged as if alone (quality_batch)
        reports = gate.validate_many(
            [(catalog.read_parts(s3, bucket, staged[dt]["parts"]), date.fromisoformat(dt), 1) for dt in chunk],
            suite="features", dataset=f"features_{feature_set}")
        for dt, report in zip(chunk, reports):
            _publish_audited(s3, bucket, planned, staged[dt], report, dt=dt, feature_set=feature_set,
                             suite_version=version_of_suite, rerun_record=rerun_record)
            warnings += len(report.warnings)
            if report.passed:
                rows[dt] = staged[dt]["rows"]
            else:
                failed.append(report.summary())
    return {"rows": rows, "warnings": warnings, "failed": failed}


def _publish_audited(s3, bucket: str, planned: Mapping[str, Any], manifest: Mapping[str, Any], report: Any, *,
                     dt: str, feature_set: str, suite_version: str, rerun_record: Mapping[str, Any]) -> None:
    """Record one staged day's gate result; publish the day's build if it passed."""
    build = planned["build"]
    result_key = catalog.features_gate_result_key(feature_set, dt, build)
    lake.put_json(s3, bucket, result_key, {**report.as_dict(), "summary": report.summary(),
                                           "build": build, "suite_version": suite_version})
    if not report.passed:
        return
    partition = catalog.features_partition(feature_set, dt)
    previous = catalog.published_one(s3, bucket, partition)
    previous_build = previous.manifest.get("build") if previous else None
    if previous_build != build:
        catalog.publish_partition(s3, bucket, partition, {
            **manifest, "job_version": planned["job_version"], "build": build,
            "previous_build": previous_build, "suite_version": suite_version, **rerun_record,
            "gate_result_uri": lake.s3_uri(bucket, result_key), "warnings": len(report.warnings),
        }, marked=previous is not None)
        catalog.remove_stale_builds(s3, bucket, partition, keep=(build, previous_build))


# ---------------------------------------------------------------------------- tasks

def plan_task(context: dict) -> dict:
    from contrail.reruns import from_params

    cfg = connections.settings()
    _, run_id = connections.run_ids(context)
    with tempfile.TemporaryDirectory() as tmp:
        return plan(connections.s3(), cfg.bucket, feature_set=cfg.feature_set, run_id=run_id,
                    artifact_dir=Path(tmp), rerun=from_params(context.get("params") or {}))


def build_local_task(planned: dict, context: dict) -> dict:
    """Run the job on this machine, then audit and publish: on the stack's Spark Connect
    server when there is one (``settings.spark_remote``), else with a spark-submit."""
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail.features import run_local, run_on_connect
    from contrail_spark.package import build_artifact

    if not planned.get("targets"):
        raise AirflowSkipException("no validated partition is pending")
    remote = connections.settings().spark_remote
    with tempfile.TemporaryDirectory() as tmp:
        # the code that runs is the code the plan's job_version names, or nothing runs
        artifact = build_artifact(Path(tmp))
        if artifact.name != planned["artifact_uri"].rsplit("/", 1)[-1]:
            raise RuntimeError(f"job code changed since planning: {artifact.name} vs {planned['artifact_uri']}")
        if remote:
            run_on_connect(planned["plan_uri"], remote=remote, s3=connections.s3())
        else:
            run_local(planned["plan_uri"], artifact=artifact, env=connections.aws_env())
    return publish_task(planned, context)


def publish_task(planned: dict, context: dict, **run_info: Any) -> dict:
    """After any runner (local, EMR, EMR Serverless): audit and publish the staged builds, emit
    the features asset with the run's extra, and fail naming each day that broke its gate."""
    from airflow.sdk.exceptions import AirflowFailException

    from contrail import assets
    from contrail.quality import QualityGate

    cfg = connections.settings()
    outcome = audit_and_publish(connections.s3(), cfg.bucket, planned, feature_set=cfg.feature_set,
                                gate_factory=QualityGate)
    online = online_store.refresh(connections.s3(), connections.aws_client("dynamodb"), cfg.bucket,
                                  table=cfg.online_table, feature_set=cfg.feature_set,
                                  changed=sorted(outcome["rows"]), ttl_days=cfg.online_ttl_days)
    extra = {"feature_set": cfg.feature_set, "dates": sorted(outcome["rows"]), "rows": outcome["rows"],
             "warnings": outcome["warnings"], "job_version": planned["job_version"],
             "build": planned["build"], "plan_uri": planned["plan_uri"], "online_store": online,
             "rerun": planned.get("rerun") or Rerun().as_dict(), **run_info}
    context["outlet_events"][assets.features()].extra = extra
    if outcome["failed"]:
        raise AirflowFailException("features failed their quality gate (not published):\n"
                                   + "\n".join(outcome["failed"]))
    return extra
