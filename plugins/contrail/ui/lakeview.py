"""The Lake view's data: which days are landed, validated, quarantined, built and scored.

Consumes only the lake, through :mod:`contrail.catalog`: one LIST per zone for the calendar
(:func:`read_listings` → the pure :func:`build_view`), and a few GETs for one day's detail
(:func:`day_detail`). It never asks Airflow, so it says what the lake holds whatever the run
history says.

A raw dataset's day is, from its current (highest) landed version:

* ``quarantined`` — the quality gate copied that version to ``quarantine/…/v=NNNN/``, or
  landing rejected the drop and no version landed;
* ``validated`` — the version has a quality result and no quarantine copy (``healed`` when an
  earlier version of the day was quarantined);
* ``landed`` — landed, not judged yet.

A feature set's day is ``built`` once its partition carries ``_SUCCESS``, a model's day
``scored``; the versions shown are the builds (and the model versions they were scored with).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping, Sequence

from contrail import catalog, lake

STATUSES: tuple[str, ...] = ("landed", "validated", "healed", "quarantined", "built", "scored")


@dataclass(frozen=True)
class Zones:
    """The zone prefixes the view lists (one LIST each)."""

    datasets: tuple[str, ...]
    feature_set: str
    model_name: str

    def prefixes(self) -> list[str]:
        out = []
        for ds in self.datasets:
            out += [catalog.landing_zone(ds), catalog.quarantine_zone(ds), catalog.quality_results_zone(ds)]
        return out + [catalog.features_zone(self.feature_set), catalog.predictions_zone(self.model_name)]


def raw_day(landing: catalog.DayEntries | None, quarantine: catalog.DayEntries | None,
            results: catalog.DayEntries | None) -> dict[str, Any]:
    """One raw dataset's day from its three zones' entries (pure)."""
    landed = sorted(landing.manifests) if landing else []
    quarantined = sorted(quarantine.versions) if quarantine else []
    judged = sorted(results.results) if results else []
    rejects = len(quarantine.rejects) if quarantine else 0
    current = landed[-1] if landed else None
    if current is None:
        status = "quarantined" if rejects else None
    elif current in quarantined:
        status = "quarantined"
    elif current in judged:
        status = "healed" if quarantined else "validated"
    else:
        status = "landed"
    return {"status": status, "versions": landed, "current": current, "quarantined": quarantined,
            "judged": judged, "rejected_drops": rejects}


def build_view(listings: Mapping[str, Iterable[str]], zones: Zones) -> dict[str, Any]:
    """The whole calendar from one listing per zone prefix (pure): per row (a dataset, the
    feature set, the model) ``{dt: cell}``, and the sorted union of days."""
    def entries(prefix: str) -> dict[str, catalog.DayEntries]:
        return catalog.day_entries(prefix, listings.get(prefix, ()))

    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for ds in zones.datasets:
        landing = entries(catalog.landing_zone(ds))
        quarantine = entries(catalog.quarantine_zone(ds))
        results = entries(catalog.quality_results_zone(ds))
        row = {}
        for dt in sorted(set(landing) | set(quarantine) | set(results)):
            cell = raw_day(landing.get(dt), quarantine.get(dt), results.get(dt))
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


def read_listings(s3, bucket: str, zones: Zones) -> dict[str, list[str]]:
    """One LIST per zone prefix, the zones in parallel (they wait on the network)."""
    from concurrent.futures import ThreadPoolExecutor

    prefixes = zones.prefixes()
    with ThreadPoolExecutor(len(prefixes)) as pool:
        keys = pool.map(lambda p: [o.key for o in lake.list_objects(s3, bucket, p)], prefixes)
        return dict(zip(prefixes, keys))


def read_view(s3, bucket: str, zones: Zones) -> dict[str, Any]:
    return build_view(read_listings(s3, bucket, zones), zones)


def _maybe_json(s3, bucket: str, key: str) -> Any:
    return lake.read_json(s3, bucket, key) if lake.exists(s3, bucket, key) else None


def _failures(result: Mapping[str, Any] | None, field: str) -> list[str]:
    return [f"[{f.get('severity')}] {f.get('expectation')}({', '.join(f.get('columns') or ['table'])})"
            f"{': ' + str(f.get('unexpected_count')) + ' unexpected' if f.get('unexpected_count') else ''}"
            f"{' — ' + f['why'] if f.get('why') else ''}"
            for f in (result or {}).get(field, [])]


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
