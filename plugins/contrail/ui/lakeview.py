"""The Lake view's data: which days are landed, validated, quarantined, built and scored.

Consumes only the lake, through :mod:`contrail.catalog`: one LIST per zone's day partitions for
the calendar (:func:`read_listings` → the pure :func:`build_view`), the validated pointers'
warning counts (:class:`PointerCache`: each pointer read once per content, so a warm calendar
makes no GET), and a few GETs for one day's detail (:func:`day_detail`). It never asks Airflow,
so it says what the lake holds whatever the run history says.

A raw dataset's day is, from its current (highest) landed version:

* ``quarantined`` — the quality gate copied that version to ``quarantine/…/v=NNNN/``, or
  landing rejected the drop and no version landed;
* ``validated`` — the version has a quality result and no quarantine copy; ``warned`` when it
  passed with warnings (non-critical rules broken: the count is on its validated pointer);
  ``healed`` when an earlier version of the day was quarantined (its warnings, if any, on hover);
* ``landed`` — landed, not judged yet.

A feature set's day is ``built`` once its partition carries ``_SUCCESS``, a model's day
``scored``; the versions shown are the builds (and the model versions they were scored with).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping, Sequence

from contrail import catalog, lake

STATUSES: tuple[str, ...] = ("landed", "validated", "warned", "healed", "quarantined", "built", "scored")


@dataclass(frozen=True)
class Zones:
    """The zone prefixes the view lists (one LIST each, of the zone's day partitions)."""

    datasets: tuple[str, ...]
    feature_set: str
    model_name: str

    def prefixes(self) -> list[str]:
        out = []
        for ds in self.datasets:
            out += [catalog.landing_zone(ds), catalog.quarantine_zone(ds), catalog.quality_results_zone(ds),
                    catalog.validated_zone(ds)]
        return out + [catalog.features_zone(self.feature_set), catalog.predictions_zone(self.model_name)]


def raw_day(landing: catalog.DayEntries | None, quarantine: catalog.DayEntries | None,
            results: catalog.DayEntries | None, pointer: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One raw dataset's day from its zones' entries and its validated pointer's fields (pure).

    ``warnings`` is the pointer's count when the pointer names the current version, else None."""
    landed = sorted(landing.manifests) if landing else []
    quarantined = sorted(quarantine.versions) if quarantine else []
    judged = sorted(results.results) if results else []
    rejects = len(quarantine.rejects) if quarantine else 0
    current = landed[-1] if landed else None
    warnings = pointer.get("warnings") if pointer and current is not None and pointer.get("version") == current else None
    if current is None:
        status = "quarantined" if rejects else None
    elif current in quarantined:
        status = "quarantined"
    elif current in judged:
        status = "healed" if quarantined else "warned" if warnings else "validated"
    else:
        status = "landed"
    return {"status": status, "versions": landed, "current": current, "quarantined": quarantined,
            "judged": judged, "rejected_drops": rejects, "warnings": warnings}


def build_view(listings: Mapping[str, Iterable[str]], zones: Zones,
               pointers: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """The whole calendar from one listing per zone prefix and the validated pointers' fields
    (``{dataset: {dt: {"version", "warnings"}}}``) (pure): per row (a dataset, the feature set,
    the model) ``{dt: cell}``, and the sorted union of days."""
    def entries(prefix: str) -> dict[str, catalog.DayEntries]:
        return catalog.day_entries(prefix, listings.get(prefix, ()))

    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for ds in zones.datasets:
        landing = entries(catalog.landing_zone(ds))
        quarantine = entries(catalog.quarantine_zone(ds))
        results = entries(catalog.quality_results_zone(ds))
        pointed = (pointers or {}).get(ds, {})
        row = {}
        for dt in sorted(set(landing) | set(quarantine) | set(results)):
            cell = raw_day(landing.get(dt), quarantine.get(dt), results.get(dt), pointed.get(dt))
            if cell["status"] is not None:
                row[dt] = cell
        rows[ds] = row
    features = entries(catalog.features_zone(zones.feature_set))
    rows[f"features/{zones.feature_set}"] = {
        dt: {"status": "built" if e.success else "staged", "builds": sorted(e.builds)}
        for dt, e in sorted(features.items()) if e.builds or e.success}
    predictions = entries(catalog.predictions_zone(zones.model_name))
    rows[f"predictions/{zones.model_name}"] = {
        dt: {"status": "scored" if e.success else "staged", "builds": sorted(e.builds),
             "model_versions": sorted({v for b in e.builds if (v := catalog.model_version_of_build(b))})}
        for dt, e in sorted(predictions.items()) if e.builds or e.success}
    days = sorted({dt for row in rows.values() for dt in row})
    counts = {name: _count(row.values()) for name, row in rows.items()}
    return {"rows": rows, "days": days, "counts": counts}


def _count(cells: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for cell in cells:
        out[cell["status"]] = out.get(cell["status"], 0) + 1
    return out


# ---------------------------------------------------------------------------- I/O edges

def _timestamp(value: str) -> Any:
    from datetime import datetime

    from botocore.utils import parse_timestamp

    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_timestamp(value)


def listing_client(client_kwargs: Mapping[str, Any]) -> Any:
    """An S3 client for the view: botocore parses every listed key's timestamp with dateutil,
    which is most of a year's LIST time; ISO timestamps parse 50x faster with ``fromisoformat``."""
    import boto3

    session = boto3.session.Session()
    session._session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    return session.client("s3", **client_kwargs)


def read_listings(s3, bucket: str, zones: Zones) -> dict[str, list[lake.ObjectInfo]]:
    """zone -> its day partitions' objects: one LIST per zone, the zones in parallel (they wait
    on the network). Only ``<zone>dt=`` is listed, so the stream's micro-batch predictions under
    ``predictions/<model>/stream/`` (one object per Firehose delivery) are not paid for."""
    prefixes = zones.prefixes()
    with ThreadPoolExecutor(len(prefixes)) as pool:
        listed = pool.map(lambda z: list(lake.list_objects(s3, bucket, catalog.day_partitions_prefix(z))), prefixes)
        return dict(zip(prefixes, listed))


def _read_pointer(s3, bucket: str, key: str) -> tuple[str, dict[str, Any]] | None:
    """(ETag, the fields the calendar needs) of one validated pointer; None if it is gone."""
    import json

    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    doc = json.loads(obj["Body"].read())
    return obj["ETag"].strip('"'), {"version": doc.get("version"), "warnings": int(doc.get("warnings") or 0)}


class PointerCache:
    """The validated pointers' ``version`` and ``warnings``, each pointer read once per content.

    Keyed by the pointer's key and checked against the ETag its zone's LIST just returned: a
    load GETs only pointers written since the one before (none once warm, one per newly
    validated day as the pipeline runs). The ETag kept is the GET's own, so a pointer replaced
    between the LIST and the GET is read again next time. Shared by the API server's threads."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.reads = 0  # GETs made, over the cache's life

    def fields(self, s3, bucket: str, listed: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """key -> fields for every listed pointer (``listed``: key -> ETag)."""
        with self._lock:
            stale = [k for k, etag in listed.items() if self._seen.get(k, ("",))[0] != etag]
        fresh: list[tuple[str, tuple[str, dict[str, Any]] | None]] = []
        if stale:
            with ThreadPoolExecutor(min(catalog.IO_THREADS, len(stale))) as pool:
                fresh = list(pool.map(lambda k: (k, _read_pointer(s3, bucket, k)), stale))
        with self._lock:
            self.reads += len(stale)
            for key, got in fresh:
                if got is not None:
                    self._seen[key] = got
            for key in set(self._seen) - set(listed):
                del self._seen[key]
            return {k: self._seen[k][1] for k in listed if k in self._seen}


def read_pointers(s3, bucket: str, zones: Zones, listings: Mapping[str, Sequence[lake.ObjectInfo]],
                  cache: PointerCache) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> dt -> the validated pointer's fields, from the validated zones' listings."""
    listed: dict[str, str] = {}
    days: dict[str, tuple[str, str]] = {}  # pointer key -> (dataset, dt)
    for ds in zones.datasets:
        zone = catalog.validated_zone(ds)
        etags = {o.key: o.etag for o in listings.get(zone, ())}
        for dt, entry in catalog.day_entries(zone, etags).items():
            key = catalog.validated_pointer_key(ds, dt)
            if entry.pointer and key in etags:
                listed[key], days[key] = etags[key], (ds, dt)
    fields = cache.fields(s3, bucket, listed)  # one call: what it was not given, it forgets
    out: dict[str, dict[str, dict[str, Any]]] = {ds: {} for ds in zones.datasets}
    for key, (ds, dt) in days.items():
        if key in fields:
            out[ds][dt] = fields[key]
    return out


def read_view(s3, bucket: str, zones: Zones, cache: PointerCache | None = None) -> dict[str, Any]:
    listings = read_listings(s3, bucket, zones)
    pointers = read_pointers(s3, bucket, zones, listings, cache or PointerCache())
    return build_view({z: [o.key for o in objs] for z, objs in listings.items()}, zones, pointers)


def _maybe_json(s3, bucket: str, key: str) -> Any:
    return lake.read_json(s3, bucket, key) if lake.exists(s3, bucket, key) else None


def _failures(result: Mapping[str, Any] | None, field: str) -> list[str]:
    """The broken rules of one severity as lines: rule, columns, how many values broke it."""
    return [f"[{f.get('severity')}] {f.get('expectation')}({', '.join(f.get('columns') or ['table'])})"
            f"{_unexpected(f)}{' — ' + f['why'] if f.get('why') else ''}"
            for f in (result or {}).get(field, [])]


def _unexpected(rule: Mapping[str, Any]) -> str:
    if not rule.get("unexpected_count"):
        return ""
    of = f" of {rule['element_count']}" if rule.get("element_count") is not None else ""
    return f": {rule['unexpected_count']}{of} unexpected"


def raw_detail(s3, bucket: str, dataset: str, dt: str) -> dict[str, Any]:
    """One raw dataset's day: every landed version's manifest, its quality result (verdict,
    broken rules, the Data Docs page), its quarantine reason, and landing's rejected drops."""
    landing = catalog.day_entries(catalog.landing_zone(dataset), [
        o.key for o in lake.list_objects(s3, bucket, catalog.landing_partition(dataset, dt))]).get(dt)
    quarantine_keys = [o.key for o in lake.list_objects(s3, bucket, catalog.quarantine_prefix(dataset, dt))]
    versions = []
    for version in sorted(landing.manifests if landing else ()):
        result_key = catalog.quality_result_key(dataset, dt, version)
        result = _maybe_json(s3, bucket, result_key)
        reason_key = catalog.quality_quarantine_prefix(dataset, dt, version) + catalog.REASON
        page = None
        if result and result.get("run_id"):
            pages = [o.key for o in lake.list_objects(
                s3, bucket, catalog.validation_pages_prefix(result["run_id"]))]
            page = catalog.validation_page(pages, dataset=dataset, dt=dt, version=version)
        versions.append({
            "version": version,
            "manifest": catalog.landing_manifest_key(dataset, dt, version),
            "result": result_key if result else None,
            "passed": None if result is None else bool(result.get("passed")),
            "rows": None if result is None else result.get("row_count"),
            "failures": _failures(result, "failures"), "warnings": _failures(result, "warnings"),
            "quality_run": None if result is None else result.get("run_id"),
            "reason": reason_key if reason_key in quarantine_keys else None,
            "data_docs": page,
        })
    rejects = []
    for key in sorted(k for k in quarantine_keys if k.endswith("/" + catalog.REASON) and "/v=" not in k):
        reason = lake.read_json(s3, bucket, key)
        rejects.append({"reason": key, "run_id": reason.get("run_id"),
                        "failures": [f"{f.get('reason')}: {f.get('source_key')} {f.get('detail') or ''}".strip()
                                     for f in reason.get("failures", [])],
                        "objects": [k for k in quarantine_keys if k.startswith(key[:-len(catalog.REASON)])
                                    and k != key]})
    return {"dataset": dataset, "versions": versions, "rejected_drops": rejects}


def published_detail(s3, bucket: str, partition: str) -> dict[str, Any] | None:
    part = catalog.published_one(s3, bucket, partition)
    if part is None:
        return None
    keep = ("build", "job_version", "previous_build", "rows", "warnings", "gate_result_uri", "model_version",
            "model_name", "run_id", "features_uri", "positive_rate", "inputs")
    return {"manifest": partition + catalog.MANIFEST, "digest": part.digest, "parts": part.parts,
            **{k: part.manifest[k] for k in keep if k in part.manifest}}


def day_detail(s3, bucket: str, zones: Zones, dt: date | str) -> dict[str, Any]:
    """Everything the lake says about one day (a few LISTs and GETs, one day's worth)."""
    dt = catalog.dt_str(dt)
    return {"dt": dt,
            "datasets": [raw_detail(s3, bucket, ds, dt) for ds in zones.datasets],
            "features": published_detail(s3, bucket, catalog.features_partition(zones.feature_set, dt)),
            "predictions": published_detail(s3, bucket, catalog.predictions_partition(zones.model_name, dt))}


def months(days: Sequence[str]) -> list[str]:
    """``YYYY-MM`` of every month from the first to the last day (pure): the calendar's blocks."""
    if not days:
        return []
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out
