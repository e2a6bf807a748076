"""The landing zone: turns an upstream daily drop into an immutable, versioned partition.

Consumes ``incoming/<dataset>/<date>/*.csv.gz`` (written by upstream, read-only to us).
Produces ``landing/<dataset>/dt=<date>/v=<NNNN>/<file>`` plus ``_manifest.json`` written
last; the manifest's presence is what makes a version visible, so a crash mid-landing
leaves an invisible orphan prefix, never a half partition. Bad drops go to
``quarantine/<dataset>/dt=<date>/<sha12>/<name>`` with a ``reason.json`` and raise
:class:`BadDropError`; nothing is written under ``landing/`` for that date.

Rules (each failure carries one short ``reason`` id), checked in this order (the row rules
line by line, ``no_rows`` and ``duplicate_file`` over the whole drop):

=======================  =======================================================
``unsafe_key``           ``..``, absolute path, a character outside ``[A-Za-z0-9._=/-]``,
                         an empty or ``.`` segment, or a key outside the drop's prefix
``key_too_long``         its landing key would pass S3's 1,024-byte limit (the write
                         would fail with a raw ``KeyTooLongError``, retried for nothing)
``not_csv_gz``           the key does not end in ``.csv.gz`` (``.CSV.GZ``, ``.csv``: the
                         drop sensor sees any name, so such a drop fails at once)
``empty_file``           zero bytes, or a gzip stream that inflates to nothing
``not_gzip``             bytes that are not a gzip stream
``truncated_gzip``       a gzip stream that ends early
``corrupt_gzip``         a gzip stream with a bad CRC / length / deflate data
``gzip_trailing_data``   bytes after the first gzip member (another member, zero padding,
                         garbage): Python's gzip reads on or skips them, Hadoop's codec
                         fails on padding, and its codecs differ on members
``not_utf8``             the inflated text is not UTF-8
``multiline_field``      a quoted field holding a line break: pandas reads one row, Spark
                         reads lines and fails on the broken record
``quoted_field``         any other ``"``: pandas reads ``""`` as null, Spark as ``''``;
                         ``"a""b"`` and ``"a\\"b"`` unescape differently. The contract's
                         dialect is unquoted (no value of it needs quotes)
``control_character``    a control character: pandas ends a field at NUL, Spark keeps it
                         (tab and the others: read alike, refused all the same)
``wrong_header``         the header is not exactly ``contract.columns(dataset)``
``ragged_row``           a row with another number of fields than the header (blank lines too)
``missing_value``        a null token (``NA``, empty) in a column the contract requires:
                         pandas reads an integer column with a gap as float64
``bad_integer``          not ``-?[0-9]+`` within 32 bits: ``517.0``, ``1e3``, `` 5``,
                         ``3000000000`` (pandas reads them, Spark fails); ``+5`` (read
                         alike, refused: one written form per value)
``bad_double``           not ``-?[0-9]+(.[0-9]+)?([eE][-+]?[0-9]+)?`` or not finite: ``nan``
                         (pandas text, Spark fails), ``NaN`` (pandas text, Spark NaN),
                         ``inf`` (pandas inf, Spark fails); ``Inf``, ``1e999`` and `` 1.5``
                         are read alike but refused (not finite / one written form)
``bad_timestamp``        not ``YYYY-MM-DDTHH:MM:SSZ`` naming a real instant: both readers
                         keep the text, the stages that parse it would not agree
``wrong_date``           a row whose year/month/day is not the partition date
``no_rows``              per drop: no part has a data row (each header-only part fails)
``duplicate_file``       the same decompressed content as another file of the drop
=======================  =======================================================

Read identically by landing, the GX reader and Spark, so accepted as they are: CRLF or
lone-CR line ends, no final newline, a UTF-8 byte-order mark, integers with leading zeros
(``01``), doubles in exponent form (``1.5e3``), spaces around a string value, a backslash
in a value, an unquoted empty field (null, like ``NA``).

Not data, ignored (never landed, never a failure): marker files beside the data, any
name below the drop prefix with a segment starting ``_`` or ``.`` (``_SUCCESS``,
``_manifest.json``, ``.part``), and zero-byte ``…/`` folder keys. A header-only part
beside parts with rows is skipped: it is not landed (it would only make every reader
guess the dtypes of an empty frame) and is listed in the manifest's ``empty_source_keys``.

Versions: a drop whose content fingerprint (the sorted sha256 of each file's decompressed
content; names and compression do not count, so a rename or a re-compression with another
gzip level or mtime is a no-op) equals the current version's is a no-op; any other good
drop becomes version N+1 beside the old ones. The manifest keeps each object's byte
sha256 too. No code path here deletes or overwrites anything under ``landing/``: every
landing write is a conditional create (:func:`contrail.lake.put_immutable`).

Pure functions (:func:`inspect_drop`, :func:`check_drop`, :func:`build_manifest`, …) do
the deciding; :func:`land_partition`, :func:`manifest_history` and :func:`current_manifest`
are the thin S3 edges, taking a boto3 S3 client.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from contrail import catalog, contract, lake

if TYPE_CHECKING:  # pragma: no cover
    from mypy_boto3_s3 import S3Client

MANIFEST_NAME = catalog.MANIFEST
REASON_NAME = catalog.REASON
# 2: content_fingerprint is over decompressed content (1: over the gzip bytes)
MANIFEST_FORMAT = 2
DROP_SUFFIX = ".csv.gz"
S3_MAX_KEY_BYTES = 1024
# the widest version prefix a landing key can get (versions are written with four digits)
_WIDEST_VERSION = 9999
QUARANTINE_NAME_CHARS = 100  # quarantined copies keep this much of the name; reason.json has all of it
# Concurrent landers of the same dt lose the manifest race at most this often before giving up.
MAX_VERSION_ATTEMPTS = 5
MESSAGE_LISTS = 25  # failures named in one error message

_SAFE_KEY = re.compile(r"[A-Za-z0-9._=/-]+")
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")
_BOM = "\ufeff"


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
    """What a good dropped object holds: data rows (header excluded) and fingerprints.

    ``sha256`` is over the object's bytes, ``content_sha256`` over its decompressed
    content: the second one decides versions and duplicates, so re-compression is a no-op.
    """

    key: str
    rows: int
    header_fingerprint: str
    sha256: str
    bytes: int
    content_sha256: str


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
    """Verdict on a whole drop: good objects with rows in key order, failures in key order,
    header-only parts skipped (``empty``) and marker files ignored (``ignored``)."""

    good: tuple[DropInspection, ...]
    failures: tuple[BadDropError, ...] = field(default=())
    empty: tuple[DropInspection, ...] = field(default=())
    ignored: tuple[str, ...] = field(default=())

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
    if not body.startswith(b"\x1f\x8b"):
        raise _bad(key, dataset, dt, "not_gzip", f"starts with {body[:2]!r}, not the gzip magic")
    inflater = zlib.decompressobj(wbits=31)  # exactly one gzip member, CRC and length checked
    try:
        raw = inflater.decompress(body)
    except zlib.error as exc:
        raise _bad(key, dataset, dt, "corrupt_gzip", str(exc)) from None
    if not inflater.eof:
        raise _bad(key, dataset, dt, "truncated_gzip", "gzip stream ends early")
    if inflater.unused_data:
        extra = inflater.unused_data
        what = "another gzip member" if extra.startswith(b"\x1f\x8b") else f"{extra[:8]!r}"
        raise _bad(key, dataset, dt, "gzip_trailing_data",
                   f"{len(extra)} bytes after the end of the gzip stream ({what})")
    return raw


def is_marker(key: str, *, dataset: str, dt: date) -> bool:
    """A marker beside the data: a name below the drop prefix with a segment starting ``_`` or
    ``.`` (``_SUCCESS``, ``.tmp/x``), as Spark and Hadoop hide them; ``.`` and ``..`` are unsafe."""
    parts = relative_key(key, dataset=dataset, dt=dt).split("/")
    return any(p.startswith(("_", ".")) and p not in (".", "..") for p in parts)


def _not_data(key: str, size: int, *, dataset: str, dt: date) -> bool:
    """A marker, or a zero-byte ``…/`` folder placeholder (consoles create them)."""
    return is_marker(key, dataset=dataset, dt=dt) or (key.endswith("/") and size == 0)


def _text_problem(text: str) -> tuple[str, str] | None:
    """Whole-text rules the readers disagree on: quotes, line breaks in fields, control characters."""
    if '"' in text:
        for row_no, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if any("\n" in value or "\r" in value for value in row):
                return "multiline_field", f"record {row_no} has a quoted field with a line break"
        line = text.count("\n", 0, text.index('"')) + 1
        return "quoted_field", f"line {line} has a double quote; the contract's dialect is unquoted"
    if (m := _CONTROL.search(text)) is not None:
        line = text.count("\n", 0, m.start()) + 1
        return "control_character", f"{m.group()!r} on line {line}"
    return None


# the landing rule a value breaking its column's type grammar (contract.type_problem) fails
_TYPE_RULES = {"integer": "bad_integer", "double": "bad_double", "timestamp": "bad_timestamp"}


def _row_problem(row: Sequence[str], spec: contract.DatasetContract) -> tuple[str, str] | None:
    """The first value of a row that breaks its column's type or nullability, as (rule, detail)."""
    for col, value in zip(spec.columns, row):
        if value in spec.na_tokens:
            if not col.nullable:
                return "missing_value", f"{col.name} is {value!r} (null) but required"
            continue
        if (problem := contract.type_problem(col.type, value)) is not None:
            return _TYPE_RULES[col.type], f"{col.name} {value[:40]!r} {problem}"
    return None


def inspect_drop(key: str, body: bytes, *, dataset: str, dt: date) -> DropInspection:
    """Validate one dropped object of ``dataset`` for day ``dt``; raise :class:`BadDropError`.

    Pure: no I/O, no clock. Rules are checked in the order of the module docstring's
    table, so the reason names the first broken one; column types, nullability and null
    tokens come from the data contract. A header-only object is returned with ``rows=0``:
    whether that is a failure is decided per drop (:func:`check_drop`).
    """
    spec = contract.dataset(dataset)
    problem = check_key(key, dataset=dataset, dt=dt)
    if problem:
        raise _bad(key, dataset, dt, "unsafe_key", problem)
    landing_key = catalog.landing_prefix(dataset, dt, _WIDEST_VERSION) + relative_key(key, dataset=dataset,
                                                                                   dt=dt)
    if (size := len(landing_key.encode())) > S3_MAX_KEY_BYTES:
        raise _bad(key, dataset, dt, "key_too_long",
                   f"its landing key would be {size} bytes, S3 allows {S3_MAX_KEY_BYTES}")
    if not key.endswith(DROP_SUFFIX):
        hint = " (wrong case)" if key.lower().endswith(DROP_SUFFIX) else ""
        raise _bad(key, dataset, dt, "not_csv_gz", f"key does not end in {DROP_SUFFIX}{hint}")
    raw = _inflate(key, body, dataset, dt)
    if not raw:
        raise _bad(key, dataset, dt, "empty_file", "gzip stream inflates to 0 bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _bad(key, dataset, dt, "not_utf8",
                   f"byte {raw[exc.start]:#04x} at offset {exc.start} (line {line})") from None
    text = text[1:] if text.startswith(_BOM) else text  # every reader skips a leading BOM
    if (found := _text_problem(text)) is not None:
        raise _bad(key, dataset, dt, *found)

    expected = spec.names
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    if tuple(header) != expected:
        raise _bad(key, dataset, dt, "wrong_header",
                   f"got {','.join(header)[:200]!r}, expected {','.join(expected)!r}")

    width = len(expected)
    date_at = [expected.index(col) for col in spec.partition_date_columns]
    # fast path: one regex call per row accepts most good rows; the rest get the per-value rules
    grammar = contract.fast_row_pattern(dataset)
    stamp_at = [expected.index(c) for c in spec.of_type("timestamp")]
    want = (dt.year, dt.month, dt.day)
    rows = 0
    for line_no, row in enumerate(reader, start=2):
        if len(row) != width:
            raise _bad(key, dataset, dt, "ragged_row",
                       f"line {line_no} has {len(row)} fields, header has {width}")
        fast = grammar.fullmatch(",".join(row)) is not None  # no quotes here: the join is the line
        if not (fast and not any(contract.type_problem("timestamp", row[i]) for i in stamp_at)) \
                and (found := _row_problem(row, spec)) is not None:
            raise _bad(key, dataset, dt, found[0], f"line {line_no}: {found[1]}")
        got = tuple(row[i] for i in date_at)
        if tuple(map(int, got)) != want:  # "01" is day 1 too: the readers agree on it
            raise _bad(key, dataset, dt, "wrong_date",
                       f"line {line_no} is dated {'-'.join(got)}, partition is {dt.isoformat()}")
        rows += 1
    return DropInspection(key=key, rows=rows, header_fingerprint=header_fingerprint(header),
                          sha256=lake.sha256_hex(body), bytes=len(body), content_sha256=lake.sha256_hex(raw))


def check_drop(bodies: Mapping[str, bytes], *, dataset: str, dt: date) -> DropCheck:
    """Inspect every object of one drop, then judge the drop as a whole.

    Marker files are ignored. Of a set of files with identical decompressed content the
    first by key is kept and the rest are ``duplicate_file``: upstream sent the same export
    twice (perhaps compressed twice), which would double every row downstream. Header-only
    parts are skipped when another part has rows, and are each ``no_rows`` when none has.
    """
    good: list[DropInspection] = []
    empty: list[DropInspection] = []
    failures: list[BadDropError] = []
    seen: dict[str, str] = {}
    ignored = tuple(sorted(k for k in bodies if _not_data(k, len(bodies[k]), dataset=dataset, dt=dt)))
    for key in sorted(set(bodies) - set(ignored)):
        try:
            inspection = inspect_drop(key, bodies[key], dataset=dataset, dt=dt)
        except BadDropError as exc:
            failures.append(exc)
            continue
        if inspection.rows == 0:
            empty.append(inspection)
            continue
        first = seen.setdefault(inspection.content_sha256, key)
        if first != key:
            failures.append(_bad(key, dataset, dt, "duplicate_file",
                                 f"same content as {first!r} (sha256 {inspection.content_sha256[:12]} "
                                 "decompressed)"))
        else:
            good.append(inspection)
    if not good and not failures:
        failures = [_bad(i.key, dataset, dt, "no_rows", "header only, and no other part of the drop has rows")
                    for i in empty]
    return DropCheck(good=tuple(good), failures=tuple(sorted(failures, key=lambda f: f.key)),
                     empty=tuple(empty), ignored=ignored)


def content_fingerprint(sha256s: Iterable[str]) -> str:
    """Fingerprint of a drop's content from its files' decompressed sha256 (names do not count)."""
    return lake.sha256_hex("\n".join(sorted(sha256s)).encode())


def same_content(manifest: Mapping[str, Any], inspections: Sequence[DropInspection]) -> bool:
    """Whether a landed version holds what a new drop holds (a format-1 manifest fingerprinted bytes)."""
    if manifest.get("manifest_format", 1) < 2:
        return manifest["content_fingerprint"] == content_fingerprint(i.sha256 for i in inspections)
    return manifest["content_fingerprint"] == content_fingerprint(i.content_sha256 for i in inspections)


def relative_key(key: str, *, dataset: str, dt: date) -> str:
    """Path of a dropped object below its drop prefix (kept as its name in landing/)."""
    return key[len(catalog.incoming_prefix(dataset, dt)):]


def manifest_key(dataset: str, dt: date, version: int) -> str:
    return catalog.landing_manifest_key(dataset, dt, version)


def build_manifest(inspections: Sequence[DropInspection], *, dataset: str, dt: date, version: int,
                   run: RunInfo, previous_version: int | None,
                   empty_source_keys: Sequence[str] = ()) -> dict[str, Any]:
    """The manifest of one landed version (pure; JSON-serialisable)."""
    if not inspections:
        raise ValueError("a manifest needs at least one object")
    headers = {i.header_fingerprint for i in inspections}
    if len(headers) != 1:  # cannot happen after inspect_drop; guards direct callers
        raise ValueError(f"objects of one version must share a header, got {sorted(headers)}")
    prefix = catalog.landing_prefix(dataset, dt, version)
    objects = [{"key": prefix + relative_key(i.key, dataset=dataset, dt=dt), "bytes": i.bytes,
                "sha256": i.sha256, "content_sha256": i.content_sha256, "rows": i.rows, "source_key": i.key}
               for i in sorted(inspections, key=lambda i: i.key)]
    return {
        "manifest_format": MANIFEST_FORMAT,
        "dataset": dataset,
        "dt": dt.isoformat(),
        "version": version,
        "objects": objects,
        "rows": sum(i.rows for i in inspections),
        "header_fingerprint": headers.pop(),
        "content_fingerprint": content_fingerprint(i.content_sha256 for i in inspections),
        "source_keys": [o["source_key"] for o in objects],
        "empty_source_keys": sorted(empty_source_keys),
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "landed_at": run.landed_at,
        "previous_version": previous_version,
    }


versions_in = catalog.versions_in


def quarantine_key(failure: BadDropError, sha256: str) -> str:
    """``quarantine/<ds>/dt=<dt>/<sha12>/<basename>``; odd characters in the name become ``_``.

    The name is cut to :data:`QUARANTINE_NAME_CHARS` so the key stays far below S3's limit
    (the folder is content-addressed, so a cut cannot mix two different bodies).
    """
    basename = failure.key.rstrip("/").rsplit("/", 1)[-1] or "unnamed"
    basename = re.sub(r"[^A-Za-z0-9._=-]", "_", basename)[:QUARANTINE_NAME_CHARS]
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
    # markers (_SUCCESS, .tmp files) and zero-byte "folder" placeholders are not files of the drop
    keys = [o.key for o in lake.list_objects(s3, bucket, prefix)
            if not _not_data(o.key, o.size, dataset=dataset, dt=dt)]
    if not keys:
        raise MissingDropError(f"nothing dropped under s3://{bucket}/{prefix} for {dataset} dt={dt}")
    bodies = {key: lake.read_bytes(s3, bucket, key) for key in keys}
    check = check_drop(bodies, dataset=dataset, dt=dt)
    if not check.ok:
        _quarantine(s3, bucket, check, bodies, run)
        raise check.error()

    orphan_taken = False
    for _attempt in range(MAX_VERSION_ATTEMPTS):
        listed = [o.key for o in lake.list_objects(s3, bucket, catalog.landing_partition(dataset, dt))]
        visible, used = versions_in(listed, dataset=dataset, dt=dt)
        current = lake.read_json(s3, bucket, manifest_key(dataset, dt, visible[-1])) if visible else None
        if current is not None and same_content(current, check.good):
            return _result(bucket, current, created=False)
        # A manifest-less prefix above the current version is what a crashed attempt left: finish
        # it (its objects are created only if absent, so identical bytes are a no-op) rather than
        # strand it; if it holds other bytes, take a fresh prefix past it.
        orphan = max(used) if used and max(used) > (visible[-1] if visible else 0) else None
        version = orphan if orphan is not None and not orphan_taken else max(used, default=0) + 1
        manifest = build_manifest(check.good, dataset=dataset, dt=dt, version=version, run=run,
                                  previous_version=visible[-1] if visible else None,
                                  empty_source_keys=[i.key for i in check.empty])
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
