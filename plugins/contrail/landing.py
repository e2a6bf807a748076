"""The landing zone: turns an upstream daily drop into an immutable, versioned partition.

Consumes ``incoming/<dataset>/<date>/*.csv.gz`` (written by upstream, read-only to us).
Produces ``landing/<dataset>/dt=<date>/v=<NNNN>/<file>`` plus ``_manifest.json`` written
last; the manifest's presence is what makes a version visible, so a crash mid-landing
leaves an invisible orphan prefix, never a half partition. Bad drops go to
``quarantine/<dataset>/dt=<date>/<sha12>/`` with a ``reason.json`` and raise
:class:`BadDropError`; nothing is written under ``landing/`` for that date.

Rules (each failure carries one short ``reason`` id):

=================  =============================================================
``unsafe_key``     ``..``, absolute path, a character outside ``[A-Za-z0-9._=/-]``,
                   an empty or ``.`` segment, or a key outside the drop's prefix
``not_csv_gz``     the key does not end in ``.csv.gz``
``empty_file``     zero bytes, or a gzip stream that inflates to nothing
``not_gzip``       bytes that are not a gzip stream
``truncated_gzip`` a gzip stream that ends early
``corrupt_gzip``   a gzip stream with a bad CRC / length / deflate data
``not_utf8``       the inflated text is not UTF-8
``wrong_header``   the header is not exactly ``nycflights.COLUMNS[dataset]``
``ragged_row``     a row with another number of fields than the header (blank lines too)
``no_rows``        a header and no data rows (an upstream export that failed silently)
``wrong_date``     a row whose year/month/day is not the partition date
``duplicate_file`` byte-identical to another file of the same drop
=================  =============================================================

Versions: a drop whose content fingerprint (the sorted sha256 of its files; names do not
count, so a rename-only re-drop is a no-op) equals the current version's is a no-op; any
other good drop becomes version N+1 beside the old ones. No code path here deletes or
overwrites anything under ``landing/``: every landing write is a conditional create
(:func:`contrail.lake.put_immutable`).

Pure functions (:func:`inspect_drop`, :func:`check_drop`, :func:`build_manifest`, …) do
the deciding; :func:`land_partition`, :func:`manifest_history` and :func:`current_manifest`
are the thin S3 edges, taking a boto3 S3 client.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from contrail import catalog, lake, nycflights

if TYPE_CHECKING:  # pragma: no cover
    from mypy_boto3_s3 import S3Client

MANIFEST_NAME = catalog.MANIFEST
REASON_NAME = catalog.REASON
MANIFEST_FORMAT = 1
DROP_SUFFIX = ".csv.gz"
# Concurrent landers of the same dt lose the manifest race at most this often before giving up.
MAX_VERSION_ATTEMPTS = 5
MESSAGE_LISTS = 25  # failures named in one error message

_SAFE_KEY = re.compile(r"[A-Za-z0-9._=/-]+")
_DATE_COLUMNS = ("year", "month", "day")


class BadDropError(ValueError):
    """One dropped object broke a landing rule.

    ``key``, ``dataset``, ``dt`` and ``reason`` (a short rule id, see the module docstring)
    say what and where; ``detail`` says how. When :func:`land_partition` raises it,
    ``failures`` holds every bad object of the drop (the raised error is the first one,
    by key) and the message lists them all.
    """

    def __init__(self, key: str, *, dataset: str, dt: date, reason: str, detail: str = "",
                 failures: Sequence["BadDropError"] = ()) -> None:
        self.key = key
        self.dataset = dataset
        self.dt = dt
        self.reason = reason
        self.detail = detail
        self._failures = tuple(failures)
        super().__init__(self._message())

    @property
    def failures(self) -> tuple["BadDropError", ...]:
        return self._failures or (self,)

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only arguments: teach pickle (process executors, Celery) to rebuild it
        return (_rebuild_bad_drop, (self.key, self.dataset, self.dt, self.reason, self.detail,
                                    self._failures))

    def describe(self) -> str:
        """One failure in one line: key, problem, detail."""
        return f"{self.key!r}: {self.reason}" + (f" ({self.detail})" if self.detail else "")

    def _message(self) -> str:
        partition = f"{self.dataset} dt={self.dt.isoformat()}"
        if len(self.failures) == 1:
            return f"bad drop for {partition}: {self.describe()}"
        listed = "; ".join(failure.describe() for failure in self.failures[:MESSAGE_LISTS])
        if len(self.failures) > MESSAGE_LISTS:  # the rest are in quarantine's reason.json files
            listed += f"; and {len(self.failures) - MESSAGE_LISTS} more"
        return f"bad drop for {partition}: {len(self.failures)} bad objects: {listed}"

    def with_failures(self, failures: Sequence["BadDropError"]) -> "BadDropError":
        return BadDropError(self.key, dataset=self.dataset, dt=self.dt, reason=self.reason,
                            detail=self.detail, failures=failures)


def _rebuild_bad_drop(key: str, dataset: str, dt: date, reason: str, detail: str,
                      failures: Sequence[BadDropError]) -> BadDropError:
    return BadDropError(key, dataset=dataset, dt=dt, reason=reason, detail=detail, failures=failures)


class MissingDropError(LookupError):
    """Nothing has been dropped under ``incoming/<dataset>/<date>/`` (yet): retry later."""


@dataclass(frozen=True)
class DropInspection:
    """What a good dropped object holds: data rows (header excluded) and fingerprints."""

    key: str
    rows: int
    header_fingerprint: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class RunInfo:
    """The orchestrator run doing the landing; ``landed_at`` is passed in, never read from a clock."""

    dag_id: str
    run_id: str
    landed_at: str


@dataclass(frozen=True)
class LandingResult:
    """A visible landed version: what the landing DAG emits on its Asset."""

    dataset: str
    dt: date
    version: int
    manifest_uri: str
    rows: int
    created: bool

    def as_asset_extra(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "dt": self.dt.isoformat(), "version": self.version,
                "manifest_uri": self.manifest_uri, "rows": self.rows}


@dataclass(frozen=True)
class DropCheck:
    """Verdict on a whole drop: good objects in key order, and failures in key order."""

    good: tuple[DropInspection, ...]
    failures: tuple[BadDropError, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.failures

    def error(self) -> BadDropError:
        """The error to raise: the first failure, naming all of them."""
        if not self.failures:
            raise ValueError("the drop has no failures")
        return self.failures[0].with_failures(self.failures)


# --------------------------------------------------------------------------- pure rules


def header_fingerprint(columns: Iterable[str]) -> str:
    """sha256 of the header line as it is written (comma-joined, no line terminator)."""
    return lake.sha256_hex(",".join(columns).encode())


def check_key(key: str, *, dataset: str, dt: date) -> str | None:
    """Why ``key`` is not acceptable as part of the drop of ``dataset``/``dt``, or None."""
    prefix = catalog.incoming_prefix(dataset, dt)
    if key.startswith("/"):
        return "absolute key"
    if ".." in key:
        return "'..' in key"
    if not _SAFE_KEY.fullmatch(key):
        odd = sorted({ch for ch in key if not _SAFE_KEY.fullmatch(ch)})
        return f"characters outside [A-Za-z0-9._=/-]: {''.join(odd)!r}"
    if not key.startswith(prefix) or len(key) == len(prefix):
        return f"not under {prefix}"
    if any(part in ("", ".") for part in key[len(prefix):].split("/")):
        return "empty or '.' path segment"
    return None


def _bad(key: str, dataset: str, dt: date, reason: str, detail: str = "") -> BadDropError:
    return BadDropError(key, dataset=dataset, dt=dt, reason=reason, detail=detail)


def _inflate(key: str, body: bytes, dataset: str, dt: date) -> bytes:
    if not body:
        raise _bad(key, dataset, dt, "empty_file", "0 bytes")
    try:
        return gzip.decompress(body)
    except EOFError as exc:
        raise _bad(key, dataset, dt, "truncated_gzip", f"gzip stream ends early: {exc}") from None
    except gzip.BadGzipFile as exc:
        # gzip raises BadGzipFile both for a foreign magic number and for CRC/length errors
        reason = "not_gzip" if not body.startswith(b"\x1f\x8b") else "corrupt_gzip"
        raise _bad(key, dataset, dt, reason, str(exc)) from None
    except zlib.error as exc:
        raise _bad(key, dataset, dt, "corrupt_gzip", str(exc)) from None


def _same_number(value: str, expected: int) -> bool:
    """``"01"`` or ``" 1"`` is day 1 too; only the text fast path is skipped for them."""
    try:
        return int(value) == expected
    except ValueError:
        return False


def inspect_drop(key: str, body: bytes, *, dataset: str, dt: date) -> DropInspection:
    """Validate one dropped object of ``dataset`` for day ``dt``; raise :class:`BadDropError`.

    Pure: no I/O, no clock. Rules are checked in the order of the module docstring's
    table, so the reason names the first broken one.
    """
    if dataset not in nycflights.COLUMNS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(nycflights.COLUMNS)}")
    problem = check_key(key, dataset=dataset, dt=dt)
    if problem:
        raise _bad(key, dataset, dt, "unsafe_key", problem)
    if not key.endswith(DROP_SUFFIX):
        raise _bad(key, dataset, dt, "not_csv_gz", f"key does not end in {DROP_SUFFIX}")
    raw = _inflate(key, body, dataset, dt)
    if not raw:
        raise _bad(key, dataset, dt, "empty_file", "gzip stream inflates to 0 bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _bad(key, dataset, dt, "not_utf8",
                   f"byte {raw[exc.start]:#04x} at offset {exc.start} (line {line})") from None

    expected = nycflights.COLUMNS[dataset]
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    if tuple(header) != expected:
        raise _bad(key, dataset, dt, "wrong_header",
                   f"got {','.join(header)[:200]!r}, expected {','.join(expected)!r}")

    width = len(expected)
    iy, im, id_ = (expected.index(col) for col in _DATE_COLUMNS)
    want = (dt.year, dt.month, dt.day)
    want_text = tuple(str(n) for n in want)
    rows = 0
    for line_no, row in enumerate(reader, start=2):
        if len(row) != width:
            raise _bad(key, dataset, dt, "ragged_row",
                       f"line {line_no} has {len(row)} fields, header has {width}")
        got_text = (row[iy], row[im], row[id_])
        if got_text != want_text and not all(map(_same_number, got_text, want)):
            got = "-".join(got_text)
            raise _bad(key, dataset, dt, "wrong_date",
                       f"line {line_no} is dated {got}, partition is {dt.isoformat()}")
        rows += 1
    if rows == 0:
        raise _bad(key, dataset, dt, "no_rows", "header only")
    return DropInspection(key=key, rows=rows, header_fingerprint=header_fingerprint(header),
                          sha256=lake.sha256_hex(body), bytes=len(body))


def check_drop(bodies: Mapping[str, bytes], *, dataset: str, dt: date) -> DropCheck:
    """Inspect every object of one drop, then flag byte-identical duplicates.

    Of a set of identical good files the first by key is kept and the rest are
    ``duplicate_file``: upstream sent the same export twice under two names, which would
    double every row downstream.
    """
    good: list[DropInspection] = []
    failures: list[BadDropError] = []
    seen: dict[str, str] = {}
    for key in sorted(bodies):
        try:
            inspection = inspect_drop(key, bodies[key], dataset=dataset, dt=dt)
        except BadDropError as exc:
            failures.append(exc)
            continue
        first = seen.setdefault(inspection.sha256, key)
        if first != key:
            failures.append(_bad(key, dataset, dt, "duplicate_file",
                                 f"byte-identical to {first!r} (sha256 {inspection.sha256[:12]})"))
        else:
            good.append(inspection)
    return DropCheck(good=tuple(good), failures=tuple(sorted(failures, key=lambda f: f.key)))


def content_fingerprint(sha256s: Iterable[str]) -> str:
    """Fingerprint of a drop's content: the sorted sha256 of its files (names do not count)."""
    return lake.sha256_hex("\n".join(sorted(sha256s)).encode())


def relative_key(key: str, *, dataset: str, dt: date) -> str:
    """Path of a dropped object below its drop prefix (kept as its name in landing/)."""
    return key[len(catalog.incoming_prefix(dataset, dt)):]


def manifest_key(dataset: str, dt: date, version: int) -> str:
    return catalog.landing_manifest_key(dataset, dt, version)


def build_manifest(inspections: Sequence[DropInspection], *, dataset: str, dt: date, version: int,
                   run: RunInfo, previous_version: int | None) -> dict[str, Any]:
    """The manifest of one landed version (pure; JSON-serialisable)."""
    if not inspections:
        raise ValueError("a manifest needs at least one object")
    headers = {i.header_fingerprint for i in inspections}
    if len(headers) != 1:  # cannot happen after inspect_drop; guards direct callers
        raise ValueError(f"objects of one version must share a header, got {sorted(headers)}")
    prefix = catalog.landing_prefix(dataset, dt, version)
    objects = [{"key": prefix + relative_key(i.key, dataset=dataset, dt=dt), "bytes": i.bytes,
                "sha256": i.sha256, "rows": i.rows, "source_key": i.key}
               for i in sorted(inspections, key=lambda i: i.key)]
    return {
        "manifest_format": MANIFEST_FORMAT,
        "dataset": dataset,
        "dt": dt.isoformat(),
        "version": version,
        "objects": objects,
        "rows": sum(i.rows for i in inspections),
        "header_fingerprint": headers.pop(),
        "content_fingerprint": content_fingerprint(i.sha256 for i in inspections),
        "source_keys": [o["source_key"] for o in objects],
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "landed_at": run.landed_at,
        "previous_version": previous_version,
    }


versions_in = catalog.versions_in


def quarantine_key(failure: BadDropError, sha256: str) -> str:
    """``quarantine/<ds>/dt=<dt>/<sha12>/<basename>``; odd characters in the name become ``_``."""
    basename = failure.key.rstrip("/").rsplit("/", 1)[-1] or "unnamed"
    basename = re.sub(r"[^A-Za-z0-9._=-]", "_", basename)
    if basename in (".", "..", REASON_NAME):
        basename = f"_{basename}"
    return catalog.landing_quarantine_key(failure.dataset, failure.dt, sha256, basename)


def quarantine_reasons(failures: Sequence[BadDropError], bodies: Mapping[str, bytes],
                       run: RunInfo) -> dict[str, dict[str, Any]]:
    """``reason.json`` documents by key: one per ``<sha12>/`` folder, listing every failure in it.

    Identical bad bytes under two names share a folder, so the document lists both.
    """
    docs: dict[str, dict[str, Any]] = {}
    for failure in failures:
        body = bodies[failure.key]
        sha = lake.sha256_hex(body)
        target = quarantine_key(failure, sha)
        folder = target.rsplit("/", 1)[0] + "/"
        doc = docs.setdefault(folder + REASON_NAME, {
            "dataset": failure.dataset, "dt": failure.dt.isoformat(), "sha256": sha,
            "bytes": len(body), "dag_id": run.dag_id, "run_id": run.run_id,
            "quarantined_at": run.landed_at, "failures": []})
        doc["failures"].append({"source_key": failure.key, "quarantined_key": target,
                                "reason": failure.reason, "detail": failure.detail,
                                "message": str(failure)})
    return docs


# --------------------------------------------------------------------------- S3 edges


def manifest_history(s3: "S3Client", bucket: str, dataset: str, dt: date) -> list[dict[str, Any]]:
    """Every visible version's manifest of one partition, oldest first."""
    keys = (o.key for o in lake.list_objects(s3, bucket, catalog.landing_partition(dataset, dt)))
    visible, _ = versions_in(keys, dataset=dataset, dt=dt)
    return [lake.read_json(s3, bucket, manifest_key(dataset, dt, v)) for v in visible]


def current_manifest(s3: "S3Client", bucket: str, dataset: str, dt: date) -> dict[str, Any] | None:
    """The highest visible version's manifest, or None if the partition never landed."""
    keys = (o.key for o in lake.list_objects(s3, bucket, catalog.landing_partition(dataset, dt)))
    visible, _ = versions_in(keys, dataset=dataset, dt=dt)
    return lake.read_json(s3, bucket, manifest_key(dataset, dt, visible[-1])) if visible else None


def _result(bucket: str, manifest: Mapping[str, Any], *, created: bool) -> LandingResult:
    dataset, dt, version = manifest["dataset"], date.fromisoformat(manifest["dt"]), manifest["version"]
    return LandingResult(dataset=dataset, dt=dt, version=version,
                         manifest_uri=lake.s3_uri(bucket, manifest_key(dataset, dt, version)),
                         rows=manifest["rows"], created=created)


def _quarantine(s3: "S3Client", bucket: str, check: DropCheck, bodies: Mapping[str, bytes],
                run: RunInfo) -> None:
    for failure in check.failures:
        body = bodies[failure.key]
        # content-addressed folder: re-quarantining the same bytes is an idempotent no-op
        lake.put_immutable(s3, bucket, quarantine_key(failure, lake.sha256_hex(body)), body)
    for key, doc in quarantine_reasons(check.failures, bodies, run).items():
        # quarantine is kept, not immutable: the reason records the latest attempt
        lake.put_json(s3, bucket, key, doc)


def land_partition(s3: "S3Client", bucket: str, *, dataset: str, dt: date, run: RunInfo) -> LandingResult:
    """Land the drop ``incoming/<dataset>/<dt>/`` as a new immutable version, or no-op.

    Raises :class:`MissingDropError` if nothing was dropped, and :class:`BadDropError` (after
    quarantining every bad object) if any object breaks a rule; then nothing is written
    under ``landing/``. Safe to retry and to run concurrently for the same partition.
    """
    prefix = catalog.incoming_prefix(dataset, dt)
    # zero-byte "folder" placeholders (consoles create them) are not files of the drop
    keys = [o.key for o in lake.list_objects(s3, bucket, prefix)
            if not (o.key.endswith("/") and o.size == 0)]
    if not keys:
        raise MissingDropError(f"nothing dropped under s3://{bucket}/{prefix} for {dataset} dt={dt}")
    bodies = {key: lake.read_bytes(s3, bucket, key) for key in keys}
    check = check_drop(bodies, dataset=dataset, dt=dt)
    if not check.ok:
        _quarantine(s3, bucket, check, bodies, run)
        raise check.error()

    fingerprint = content_fingerprint(i.sha256 for i in check.good)
    orphan_taken = False
    for _attempt in range(MAX_VERSION_ATTEMPTS):
        listed = [o.key for o in lake.list_objects(s3, bucket, catalog.landing_partition(dataset, dt))]
        visible, used = versions_in(listed, dataset=dataset, dt=dt)
        current = lake.read_json(s3, bucket, manifest_key(dataset, dt, visible[-1])) if visible else None
        if current is not None and current["content_fingerprint"] == fingerprint:
            return _result(bucket, current, created=False)
        # A manifest-less prefix above the current version is what a crashed attempt left: finish
        # it (its objects are created only if absent, so identical bytes are a no-op) rather than
        # strand it; if it holds other bytes, take a fresh prefix past it.
        orphan = max(used) if used and max(used) > (visible[-1] if visible else 0) else None
        version = orphan if orphan is not None and not orphan_taken else max(used, default=0) + 1
        manifest = build_manifest(check.good, dataset=dataset, dt=dt, version=version, run=run,
                                  previous_version=visible[-1] if visible else None)
        try:
            for obj in manifest["objects"]:
                lake.put_immutable(s3, bucket, obj["key"], bodies[obj["source_key"]],
                                   ContentType="application/gzip",
                                   Metadata={"sha256": obj["sha256"], "source-key": obj["source_key"]})
            lake.put_immutable(s3, bucket, manifest_key(dataset, dt, version), lake.json_bytes(manifest),
                               ContentType="application/json")
        except lake.ImmutableObjectError:
            orphan_taken = orphan_taken or version == orphan
            continue  # another lander took this version first, or the orphan holds other bytes
        return _result(bucket, manifest, created=True)
    raise RuntimeError(f"could not land {dataset} dt={dt}: lost the version race "
                       f"{MAX_VERSION_ATTEMPTS} times")
