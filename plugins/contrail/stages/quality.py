"""Quality's Airflow edge: validate every pending landed version with one gate, write its
verdict to the lake, and fail the run when a partition it answers for broke a critical rule.

Commit order per partition (the result is the "done" record, so it is written last):
``validated/…/_pointer.json`` or the ``quarantine/…/v=NNNN/`` copy and its ``reason.json``,
then ``quality/results/…/v=NNNN.json``. A crash in between leaves the version pending, and the
next run validates it again and rewrites the same pointer or copy.

A run answers for the partitions it validated and for those named by the asset events that
triggered it, so a re-run of a failed run reports the same broken rules again (from the stored
result) instead of turning green on nothing; a changed input is a new version, validated anew.

**Re-validating a range** (a triggered run with ``from_date``/``to_date``/``rebuild``, see
:mod:`contrail.reruns`): ``changed`` re-judges the current versions in range whose result
records another ``suite_version`` than the committed suite (a tightened suite), plus the pending
ones; ``all`` re-judges every current version in range. The new verdict replaces the old one
and the new result records the request (``rerun``, ``reason``) and the verdict it replaced
(``previous``). When the verdict flips, nothing landed is touched:

* pass → fail: the validated pointer is withdrawn first (features no longer sees the day),
  then the version is copied to quarantine with its ``reason.json``, then the result;
* fail → pass: the version's quarantine copy and ``reason.json`` are removed first (the
  failed verdict stays in the new result's ``previous``), then the pointer, then the result.

Either way the day is never shown both validated and quarantined, and until the result is
written the old result still stands, so a crash is repaired by re-running the same request.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from contrail import catalog, connections, lake
from contrail.reruns import CHANGED, Rerun, from_params

# partitions read and validated together: bounds the memory of a catch-up (a month of days)
CHUNK = 31

log = logging.getLogger(__name__)


class Gate(Protocol):
    """A quality engine: the built-in one is :class:`contrail.quality.QualityGate` (GX 1.x)."""

    def validate(self, df: Any, *, suite: str, dataset: str, dt: date, version: int) -> Any: ...

    def validate_many(self, partitions: Sequence[tuple[Any, date, int]], *, suite: str,
                      dataset: str) -> list[Any]:
        """One report per ``(frame, dt, version)``, each the one :meth:`validate` gives."""
        ...

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


def withdraw_quarantine(s3, bucket: str, dataset: str, part: catalog.PartitionVersion) -> None:
    """Remove quality's quarantine copy of a version that now passes (its ``reason.json``
    first, so a half-removed copy is never presented as a verdict). Landed data is untouched."""
    prefix = catalog.quality_quarantine_prefix(dataset, part.dt, part.version)
    keys = [o.key for o in lake.list_objects(s3, bucket, prefix)]
    reason = prefix + catalog.REASON
    lake.delete_keys(s3, bucket, [k for k in keys if k == reason])
    lake.delete_keys(s3, bucket, [k for k in keys if k != reason])


def commit_verdict(s3, bucket: str, dataset: str, part: catalog.PartitionVersion, manifest: dict,
                   result: dict, previous: dict | None = None) -> None:
    """Write one verdict: pointer (pass) or quarantine (fail) first, the result last.

    ``previous`` is the stored result a re-validation replaces: a flipped verdict first
    withdraws what the old one published (see the module docstring)."""
    manifest_uri = lake.s3_uri(bucket, catalog.landing_manifest_key(dataset, part.dt, part.version))
    result_key = catalog.quality_result_key(dataset, part.dt, part.version)
    was_passed = None if previous is None else bool(previous.get("passed"))
    if result["passed"]:
        if was_passed is False:
            withdraw_quarantine(s3, bucket, dataset, part)
        lake.put_json(s3, bucket, catalog.validated_pointer_key(dataset, part.dt), {
            "dataset": dataset, "dt": part.dt, "version": part.version,
            "manifest_uri": manifest_uri, "quality_result_uri": lake.s3_uri(bucket, result_key),
            "rows": manifest.get("rows"), "objects": [o["key"] for o in manifest["objects"]],
            "warnings": len(result.get("warnings", [])), "dag_id": result.get("dag_id"),
            "run_id": result.get("run_id"),
        })
    else:
        if was_passed:
            pointer = catalog.validated_pointer_key(dataset, part.dt)
            if lake.exists(s3, bucket, pointer):
                s3.delete_object(Bucket=bucket, Key=pointer)
        quarantine_partition(s3, bucket, dataset, part, manifest, result)
    lake.put_json(s3, bucket, result_key, result)


def suite_version(suite: str) -> str:
    """Content hash of a committed suite: results record which rules judged them."""
    from contrail.quality import load_suite_document

    return lake.sha256_hex(lake.json_bytes(load_suite_document(suite)))[:12]


def stale_results(s3, bucket: str, dataset: str, parts: Iterable[catalog.PartitionVersion],
                  suite_hash: str) -> set[tuple[str, int]]:
    """The versions among ``parts`` whose stored result was judged by another suite version."""
    stale = set()
    for part in parts:
        stored = lake.read_json(s3, bucket, catalog.quality_result_key(dataset, part.dt, part.version))
        if stored.get("suite_version") != suite_hash:
            stale.add((part.dt, part.version))
    return stale


def validate(s3, bucket: str, *, dataset: str, gate_factory, run: QualityRun,
             answers_for: Iterable[str] = (), rerun: Rerun = Rerun()) -> tuple[list[dict], Path | None]:
    """Validate every pending version of ``dataset`` (in ``rerun``'s range, and re-validate what
    it asks for); returns one summary per partition this run answers for (validated now, or
    named in ``answers_for`` and judged before) and the Data Docs site it built (None when
    nothing was validated). ``gate_factory`` makes the engine only when something is to be
    validated (GX costs seconds to import)."""
    manifests, results = catalog.validation_keys(s3, bucket, dataset)
    suite = f"{dataset}_raw"
    version_of_suite = suite_version(suite)
    stale: set[tuple[str, int]] = set()
    if rerun.rebuild == CHANGED:
        stale = stale_results(s3, bucket, dataset, catalog.judged_in_range(manifests, results, rerun),
                              version_of_suite)
    pending, again = catalog.validation_plan(manifests, results, rerun, stale=stale)
    # a retry of this run re-judges only what it has not re-judged yet (its result is its own)
    stored = {p: lake.read_json(s3, bucket, catalog.quality_result_key(dataset, p.dt, p.version)) for p in again}
    done_here = {p for p in again if stored[p].get("run_id") == run.run_id and not rerun.is_default}
    again = [p for p in again if p not in done_here]
    redo = {(p.dt, p.version) for p in again}
    current = catalog.current_versions(manifests)
    judged = catalog.result_versions(results)
    reported = sorted({catalog.PartitionVersion(dt, current[dt]) for dt in answers_for
                       if dt in current and (dt, current[dt]) in judged and (dt, current[dt]) not in redo}
                      | done_here)
    log.info("%s: %d partition(s) pending validation, %d to re-validate (%s), %d judged before", dataset,
             len(pending), len(again), rerun.rebuild, len(reported))
    reports = [_summary(bucket, dataset, part, lake.read_json(
        s3, bucket, catalog.quality_result_key(dataset, part.dt, part.version))) for part in reported]
    todo = sorted(pending + again)
    if not todo:
        return reports, None
    gate = gate_factory()
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        manifests_of = {p: lake.read_json(s3, bucket, catalog.landing_manifest_key(dataset, p.dt, p.version))
                        for p in chunk}
        verdicts = gate.validate_many(
            [(read_landed(s3, bucket, manifests_of[p]), date.fromisoformat(p.dt), p.version) for p in chunk],
            suite=suite, dataset=dataset)
        for part, report in zip(chunk, verdicts):
            previous = None
            result = {**report.as_dict(), "summary": report.summary(), "suite_version": version_of_suite,
                      "manifest_uri": lake.s3_uri(bucket, catalog.landing_manifest_key(dataset, part.dt,
                                                                                       part.version)),
                      "dag_id": run.dag_id, "run_id": run.run_id}
            if not rerun.is_default:
                result.update(rerun=rerun.as_dict(), reason=rerun.reason)
            if (part.dt, part.version) in redo:
                previous = stored[part]
                result["previous"] = {k: previous.get(k) for k in ("passed", "suite_version", "run_id", "summary")}
            commit_verdict(s3, bucket, dataset, part, manifests_of[part], result, previous)
            log.info("%s dt=%s v%d: %s%s", dataset, part.dt, part.version,
                     "passed" if report.passed else "FAILED → quarantined",
                     " (re-validated)" if previous is not None else "")
            summary = _summary(bucket, dataset, part, result)
            if previous is not None:
                summary["previous_passed"] = bool(previous.get("passed"))
            reports.append(summary)
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


def validated_event(dataset: str, reports: list[dict], rerun: Rerun) -> dict[str, Any]:
    """The ``validated_<dataset>`` event extra: the passed partitions (what features builds
    from) and, for a re-validation, every re-judged partition with its old and new verdict
    (what features must rebuild, including days that no longer pass)."""
    extra: dict[str, Any] = {"dataset": dataset, "partitions": [
        {k: r[k] for k in ("dt", "version", "manifest_uri", "rows")} for r in reports if r["passed"]]}
    revalidated = [{"dt": r["dt"], "version": r["version"], "passed": r["passed"],
                    "previous_passed": r["previous_passed"]} for r in reports if "previous_passed" in r]
    if not rerun.is_default:
        extra["rerun"] = rerun.as_dict()
        extra["revalidated"] = revalidated
    return extra


def validate_task(dataset: str, context: dict) -> list[dict]:
    """The ``validate_<dataset>`` task: sets the ``validated_<dataset>`` event extra."""
    from contrail import assets
    from contrail.quality import QualityGate, publish_data_docs

    cfg, s3 = connections.settings(), connections.s3()
    dag_id, run_id = connections.run_ids(context)
    answers_for = [str(e["dt"]) for e in connections.triggering_extras(context)
                   if e.get("dataset") == dataset and e.get("dt")]
    rerun = from_params(context.get("params") or {})
    # the site is built in a directory of the task's own, gone once it is published
    with tempfile.TemporaryDirectory(prefix="contrail-data-docs-") as docs:
        reports, site = validate(s3, cfg.bucket, dataset=dataset,
                                 gate_factory=lambda: QualityGate(docs_dir=Path(docs)),
                                 run=QualityRun(dag_id, run_id), answers_for=answers_for, rerun=rerun)
        extra = validated_event(dataset, reports, rerun)
        if site is not None:
            # the latest build at the site's root (with the static assets every build's pages
            # use), then this run's build kept under runs/<run>/
            extra["data_docs"] = publish_data_docs(s3, cfg.bucket, site, prefix=catalog.data_docs_prefix())
            publish_data_docs(s3, cfg.bucket, site, prefix=catalog.data_docs_prefix(run_id))
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
