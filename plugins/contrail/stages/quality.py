"""Quality's Airflow edge: validate every pending landed version with one gate, write its
verdict to the lake, and fail the run when a partition it answers for broke a critical rule.

Commit order per partition (the result is the "done" record, so it is written last):
``validated/…/_pointer.json`` or the ``quarantine/…/v=NNNN/`` copy and its ``reason.json``,
then ``quality/results/…/v=NNNN.json``. A crash in between leaves the version pending, and the
next run validates it again and rewrites the same pointer or copy.

A run answers for the partitions it validated and for those named by the asset events that
triggered it, so a re-run of a failed run reports the same broken rules again (from the stored
result) instead of turning green on nothing; a changed input is a new version, validated anew.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Protocol

from contrail import catalog, connections, lake

log = logging.getLogger(__name__)


class Gate(Protocol):
    """A quality engine: the built-in one is :class:`contrail.quality.QualityGate` (GX 1.x)."""

    def validate(self, df: Any, *, suite: str, dataset: str, dt: date, version: int) -> Any: ...

    def build_data_docs(self) -> Path: ...


@dataclass(frozen=True)
class QualityRun:
    dag_id: str
    run_id: str


def read_landed(s3, bucket: str, manifest: dict):
    """The landed CSV objects of one manifest as one pandas frame."""
    import pandas as pd

    from contrail.quality import read_landed_csv

    frames = [read_landed_csv(lake.read_bytes(s3, bucket, obj["key"])) for obj in manifest["objects"]]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _summary(bucket: str, dataset: str, part: catalog.PartitionVersion, result: dict) -> dict:
    manifest_key = catalog.landing_manifest_key(dataset, part.dt, part.version)
    return {"dataset": dataset, "dt": part.dt, "version": part.version, "passed": bool(result["passed"]),
            "rows": result.get("row_count"), "warnings": len(result.get("warnings", [])),
            "result_uri": lake.s3_uri(bucket, catalog.quality_result_key(dataset, part.dt, part.version)),
            "summary": result.get("summary", ""), "manifest_uri": lake.s3_uri(bucket, manifest_key),
            "quality_run": result.get("run_id")}


def quarantine_partition(s3, bucket: str, dataset: str, part: catalog.PartitionVersion, manifest: dict,
                         result: dict) -> None:
    """Copy a failed version's objects to quarantine with the failing expectations beside them."""
    prefix = catalog.quality_quarantine_prefix(dataset, part.dt, part.version)
    for obj in manifest["objects"]:
        name = obj["key"].rsplit("/", 1)[-1]
        s3.copy_object(Bucket=bucket, Key=prefix + name, CopySource={"Bucket": bucket, "Key": obj["key"]})
    lake.put_json(s3, bucket, prefix + catalog.REASON, {
        "stage": "quality", "dataset": dataset, "dt": part.dt, "version": part.version,
        "failures": result.get("failures", []), "summary": result.get("summary"),
    })


def commit_verdict(s3, bucket: str, dataset: str, part: catalog.PartitionVersion, manifest: dict,
                   result: dict) -> None:
    """Write one verdict: pointer (pass) or quarantine (fail) first, the result last."""
    manifest_uri = lake.s3_uri(bucket, catalog.landing_manifest_key(dataset, part.dt, part.version))
    result_key = catalog.quality_result_key(dataset, part.dt, part.version)
    if result["passed"]:
        lake.put_json(s3, bucket, catalog.validated_pointer_key(dataset, part.dt), {
            "dataset": dataset, "dt": part.dt, "version": part.version,
            "manifest_uri": manifest_uri, "quality_result_uri": lake.s3_uri(bucket, result_key),
            "rows": manifest.get("rows"), "objects": [o["key"] for o in manifest["objects"]],
            "warnings": len(result.get("warnings", [])), "dag_id": result.get("dag_id"),
            "run_id": result.get("run_id"),
        })
    else:
        quarantine_partition(s3, bucket, dataset, part, manifest, result)
    lake.put_json(s3, bucket, result_key, result)


def suite_version(suite: str) -> str:
    """Content hash of a committed suite: results record which rules judged them."""
    from contrail.quality import load_suite_document

    return lake.sha256_hex(lake.json_bytes(load_suite_document(suite)))[:12]


def validate(s3, bucket: str, *, dataset: str, gate_factory, run: QualityRun,
             answers_for: Iterable[str] = ()) -> tuple[list[dict], Path | None]:
    """Validate every pending version of ``dataset``; returns one summary per partition this run
    answers for (validated now, or named in ``answers_for`` and judged before) and the Data
    Docs site it built (None when nothing was validated). ``gate_factory`` makes the engine only
    when something is pending (GX costs seconds to import)."""
    manifests = [o.key for o in lake.list_objects(s3, bucket, catalog.landing_zone(dataset))]
    results = [o.key for o in lake.list_objects(s3, bucket, catalog.quality_results_zone(dataset))]
    pending = catalog.pending_validation(manifests, results)
    current = catalog.current_versions(manifests)
    judged = catalog.result_versions(results)
    again = sorted({catalog.PartitionVersion(dt, current[dt]) for dt in answers_for
                    if dt in current and (dt, current[dt]) in judged})
    log.info("%s: %d partition(s) pending validation, %d judged before", dataset, len(pending), len(again))
    reports = [_summary(bucket, dataset, part, lake.read_json(
        s3, bucket, catalog.quality_result_key(dataset, part.dt, part.version))) for part in again]
    if not pending:
        return reports, None
    gate = gate_factory()
    suite = f"{dataset}_raw"
    version_of_suite = suite_version(suite)
    for part in pending:
        manifest = lake.read_json(s3, bucket, catalog.landing_manifest_key(dataset, part.dt, part.version))
        report = gate.validate(read_landed(s3, bucket, manifest), suite=suite, dataset=dataset,
                               dt=date.fromisoformat(part.dt), version=part.version)
        result = {**report.as_dict(), "summary": report.summary(), "suite_version": version_of_suite,
                  "manifest_uri": lake.s3_uri(bucket, catalog.landing_manifest_key(dataset, part.dt,
                                                                                   part.version)),
                  "dag_id": run.dag_id, "run_id": run.run_id}
        commit_verdict(s3, bucket, dataset, part, manifest, result)
        log.info("%s dt=%s v%d: %s", dataset, part.dt, part.version,
                 "passed" if report.passed else "FAILED → quarantined")
        reports.append(_summary(bucket, dataset, part, result))
    return reports, gate.build_data_docs()


def link_validation_pages(s3, bucket: str, reports: list[dict]) -> None:
    """Give each report the key of its validation page in the build of the run that judged it
    (``data_docs_page``, None if that build is gone): what the task's extra link opens."""
    pages: dict[str, list[str]] = {}
    for r in reports:
        run = r.get("quality_run")
        if run and run not in pages:
            pages[run] = [o.key for o in lake.list_objects(s3, bucket, catalog.validation_pages_prefix(run))]
        r["data_docs_page"] = catalog.validation_page(pages.get(run, ()), dataset=r["dataset"], dt=r["dt"],
                                                      version=r["version"]) if run else None


def validate_task(dataset: str, context: dict) -> list[dict]:
    """The ``validate_<dataset>`` task: sets the ``validated_<dataset>`` event extra."""
    from contrail import assets
    from contrail.quality import QualityGate, publish_data_docs

    cfg, s3 = connections.settings(), connections.s3()
    dag_id, run_id = connections.run_ids(context)
    answers_for = [str(e["dt"]) for e in connections.triggering_extras(context)
                   if e.get("dataset") == dataset and e.get("dt")]
    reports, site = validate(s3, cfg.bucket, dataset=dataset, gate_factory=QualityGate,
                             run=QualityRun(dag_id, run_id), answers_for=answers_for)
    extra: dict[str, Any] = {"dataset": dataset, "partitions": [
        {k: r[k] for k in ("dt", "version", "manifest_uri", "rows")} for r in reports if r["passed"]]}
    if site is not None:
        # the latest build at the site's root, and this run's build kept under runs/<run>/
        publish_data_docs(s3, cfg.bucket, site, prefix=catalog.data_docs_prefix(run_id))
        extra["data_docs"] = publish_data_docs(s3, cfg.bucket, site, prefix=catalog.data_docs_prefix())
        log.info("Data Docs published to %s (this run's build: %s)", extra["data_docs"],
                 catalog.data_docs_prefix(run_id))
    link_validation_pages(s3, cfg.bucket, reports)
    context["outlet_events"][assets.validated(dataset)].extra = extra
    return reports


def enforce_gate(reports: list[dict]) -> None:
    """Fail (without retries) when any partition the run answers for broke a critical rule."""
    from airflow.sdk.exceptions import AirflowFailException

    failed = [r for r in reports if not r["passed"]]
    for r in reports:
        log.info("%s dt=%s v%d: %s (%s warning(s))", r["dataset"], r["dt"], r["version"],
                 "passed" if r["passed"] else "failed", r["warnings"])
    if failed:
        raise AirflowFailException("quality gate failed — quarantined, not validated:\n" +
                                   "\n".join(r["summary"] for r in failed))
