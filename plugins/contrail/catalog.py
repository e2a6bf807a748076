"""The lake contract: every zone's key layout, manifest and marker, the publish protocol, and
the rules for what is pending — for batch and stream. Every stage reads and writes the lake
through this module; no stage builds a key by hand.

Zones (one bucket, prefixes are zones)::

    incoming/<dataset>/<dt>/…                      upstream's drop (read-only to us)
    stream/flights/YYYY/MM/DD/HH/…                 Firehose deliveries (read-only to us)
    landing/<dataset>/dt=<dt>/v=NNNN/…             immutable versions; _manifest.json written last
    quarantine/<dataset>/dt=<dt>/<sha12>/…         landing's rejects, content-addressed, reason.json
    quarantine/<dataset>/dt=<dt>/v=NNNN/…          quality's rejects (a copy of the version), reason.json
    quality/results/<dataset>/dt=<dt>/v=NNNN.json  a raw gate's verdict: written LAST (the "done" record)
    quality/results/features/<set>/dt=<dt>/b=<build>.json   the features gate's verdict on a build
    validated/<dataset>/dt=<dt>/_pointer.json      the passing version (only what passed)
    features/<set>/dt=<dt>/b=<build>/part-*.parquet  a staged build (invisible: nothing names it yet)
    features/<set>/dt=<dt>/_manifest.json + _SUCCESS  the published build (the manifest names its parts)
    predictions/<model>/dt=<dt>/…                  the same build/publish layout as features
    predictions/<model>/stream/dt=<dt>/<sha>.parquet  micro-batch predictions, one per stream object
    ledger/stream/flights/{objects,events,days}/…  the stream's exactly-once ledger
    deadletter/stream/invalid/flights/<sha>.json   rejected stream records with the reason
    warm/stream/flights/dt=<dt>/…                  compacted stream events
    artifacts/…, logs/emr/…                        job code and cluster logs

**Write, audit, publish.** A gated zone is written to a build prefix that no reader looks at,
audited by its gate, and only then published by :func:`publish_partition`: the partition's
``_manifest.json`` (naming exactly the build's parts) is replaced in one PUT, then ``_SUCCESS`` is
written if absent. Readers trust only a partition with ``_SUCCESS`` and read only the parts its
manifest names, so a failure at any point publishes nothing and the previous build stays readable.

**Done is written last.** The record that makes work done (a landing manifest, a quality result,
a ledger entry, a ``_SUCCESS``) is the last write of its step, so a crash anywhere re-runs the step
and never strands a partition.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from contrail import lake

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from contrail.reruns import Rerun
    from mypy_boto3_s3 import S3Client

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
REASON = "reason.json"
POINTER = "_pointer.json"
INCOMING_ROOT = "incoming/"
LANDING_ROOT = "landing/"
QUARANTINE_ROOT = "quarantine/"
STREAM_ROOT = "stream/"
STREAM_PREFIX = f"{STREAM_ROOT}flights/"
DATA_DOCS_PREFIX = "quality/data-docs/"
DATA_DOCS_RUNS = DATA_DOCS_PREFIX + "runs/"  # each quality run's build, kept
DATA_DOCS_STATIC = "static/"  # GX's styles, scripts and images in a built site
LEDGER_PREFIX = "ledger/stream/flights/"
OBJECTS_LEDGER = f"{LEDGER_PREFIX}objects/"
EVENT_CLAIMS = f"{LEDGER_PREFIX}events/"
DAY_INDEX = f"{LEDGER_PREFIX}days/"
DEADLETTER_PREFIX = "deadletter/stream/invalid/flights/"
WARM_PREFIX = "warm/stream/flights/"
SPARK_ARTIFACTS = "artifacts/spark/"
EMR_LOGS = "logs/emr/"
IO_THREADS = 8  # concurrent S3 requests of one publish: they wait on the network, not the cores

_VERSIONED = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/v=(\d{4,})")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# landing's rejects: quarantine/<ds>/dt=<dt>/<sha12>/… (quality's are …/dt=<dt>/v=NNNN/…)
_LANDING_REJECT = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/(?!v=\d)[^/]+/")
_MANIFEST_KEY = re.compile(r"v=(\d{4,})/" + re.escape(MANIFEST) + r"$")
_VERSION_DIR = re.compile(r"v=(\d{4,})/")
_SUCCESS_KEY = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/" + re.escape(SUCCESS) + "$")
_BUILD = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def dt_str(dt: date | str) -> str:
    return dt if isinstance(dt, str) else dt.isoformat()


# ---------------------------------------------------------------------------- landing zone

def incoming_zone(dataset: str) -> str:
    return f"{INCOMING_ROOT}{dataset}/"


def incoming_prefix(dataset: str, dt: date | str) -> str:
    """Where upstream drops a day's export: ``incoming/<dataset>/<date>/``."""
    return f"{incoming_zone(dataset)}{dt_str(dt)}/"


def landing_partition(dataset: str, dt: date | str) -> str:
    return f"{landing_zone(dataset)}dt={dt_str(dt)}/"


def landing_prefix(dataset: str, dt: date | str, version: int) -> str:
    """One immutable version of a landed partition: ``landing/<ds>/dt=…/v=0001/``."""
    return f"{landing_partition(dataset, dt)}v={version:04d}/"


def landing_manifest_key(dataset: str, dt: date | str, version: int) -> str:
    return landing_prefix(dataset, dt, version) + MANIFEST


def landing_zone(dataset: str) -> str:
    return f"{LANDING_ROOT}{dataset}/"


def quarantine_prefix(dataset: str, dt: date | str) -> str:
    return f"{QUARANTINE_ROOT}{dataset}/dt={dt_str(dt)}/"


def landing_quarantine_key(dataset: str, dt: date | str, sha256: str, basename: str) -> str:
    """Landing's content-addressed reject: ``quarantine/<ds>/dt=<dt>/<sha12>/<basename>``."""
    return f"{quarantine_prefix(dataset, dt)}{sha256[:12]}/{basename}"


def quality_quarantine_prefix(dataset: str, dt: date | str, version: int) -> str:
    """Where the quality gate copies a failed landed version, beside its ``reason.json``."""
    return f"{quarantine_prefix(dataset, dt)}v={version:04d}/"


def versions_in(keys: Iterable[str], *, dataset: str, dt: date | str) -> tuple[list[int], set[int]]:
    """From keys under a landing partition: (visible versions ascending, every version prefix used).

    A version is visible only once its manifest exists; a prefix without one is an orphan a
    crashed lander left, never reused.
    """
    base = landing_partition(dataset, dt)
    visible: set[int] = set()
    used: set[int] = set()
    for key in keys:
        rest = key[len(base):] if key.startswith(base) else ""
        if (m := _VERSION_DIR.match(rest)) is not None:
            used.add(int(m.group(1)))
            if _MANIFEST_KEY.fullmatch(rest):
                visible.add(int(m.group(1)))
    return sorted(visible), used


def current_versions(manifest_keys: Iterable[str]) -> dict[str, int]:
    """dt -> highest visible landed version, from ``…/dt=…/v=NNNN/_manifest.json`` keys (pure)."""
    current: dict[str, int] = {}
    for key in manifest_keys:
        if not key.endswith("/" + MANIFEST):
            continue
        match = _VERSIONED.search(key)
        if match:
            dt, version = match.group(1), int(match.group(2))
            current[dt] = max(current.get(dt, 0), version)
    return current


# ---------------------------------------------------------------------------- quality zone

@dataclass(frozen=True, order=True)
class PartitionVersion:
    dt: str
    version: int

    @property
    def key(self) -> str:
        return f"dt={self.dt}/v={self.version:04d}"


def quality_results_zone(dataset: str) -> str:
    return f"quality/results/{dataset}/"


def quality_result_key(dataset: str, dt: date | str, version: int) -> str:
    return f"{quality_results_zone(dataset)}dt={dt_str(dt)}/v={version:04d}.json"


def validated_zone(dataset: str) -> str:
    return f"validated/{dataset}/"


def validated_pointer_key(dataset: str, dt: date | str) -> str:
    return f"{validated_zone(dataset)}dt={dt_str(dt)}/{POINTER}"


def result_versions(result_keys: Iterable[str]) -> set[tuple[str, int]]:
    """(dt, version) pairs that have a quality result (pure)."""
    done = set()
    for key in result_keys:
        match = _VERSIONED.search(key)
        if match:
            done.add((match.group(1), int(match.group(2))))
    return done


def pending_validation(manifest_keys: Iterable[str], result_keys: Iterable[str]) -> list[PartitionVersion]:
    """Current landed versions that have no quality result yet, oldest first (pure).

    The result is the gate's last write, so a version whose pointer or quarantine copy was
    written before a crash is still pending here and is validated again.
    """
    done = result_versions(result_keys)
    return [PartitionVersion(dt, v) for dt, v in sorted(current_versions(manifest_keys).items())
            if (dt, v) not in done]


def awaiting_landing(dataset: str, incoming_keys: Iterable[str], landing_keys: Iterable[str],
                     quarantine_keys: Iterable[str]) -> list[str]:
    """Days upstream has dropped for ``dataset`` (``incoming/<ds>/<date>/…``) that have neither a
    landed version nor a landing reject yet, oldest first (pure): a landing run is on its way."""
    prefix = incoming_zone(dataset)
    dropped = {key[len(prefix):].split("/", 1)[0] for key in incoming_keys
               if key.startswith(prefix) and "/" in key[len(prefix):]}
    landed = set(current_versions(landing_keys))
    rejected = {match.group(1) for match in map(_LANDING_REJECT.search, quarantine_keys) if match}
    return sorted(dt for dt in dropped if _DAY.fullmatch(dt) and dt not in landed | rejected)


def validation_plan(manifest_keys: Iterable[str], result_keys: Iterable[str], rerun: "Rerun", *,
                    stale: Iterable[tuple[str, int]] = ()) -> tuple[list[PartitionVersion], list[PartitionVersion]]:
    """What a quality run validates: ``(pending, again)``, each oldest first (pure).

    ``pending`` are the current versions in the request's range without a result (for the
    default request, every pending version: :func:`pending_validation`). ``again`` are the
    current versions in range that were judged before and that the request re-validates:
    ``all`` takes every one, ``changed`` those in ``stale`` (judged by another suite version),
    ``pending`` none.
    """
    done = result_versions(result_keys)
    stale_set = set(stale)
    pending: list[PartitionVersion] = []
    again: list[PartitionVersion] = []
    for dt, version in sorted(current_versions(manifest_keys).items()):
        if not rerun.covers(dt):
            continue
        if (dt, version) not in done:
            pending.append(PartitionVersion(dt, version))
        elif rerun.redoes(pending=False, changed=(dt, version) in stale_set):
            again.append(PartitionVersion(dt, version))
    return pending, again


def judged_in_range(manifest_keys: Iterable[str], result_keys: Iterable[str],
                    rerun: "Rerun") -> list[PartitionVersion]:
    """Current versions in range that have a result (pure): a ``changed`` re-run compares their suite."""
    done = result_versions(result_keys)
    return [PartitionVersion(dt, v) for dt, v in sorted(current_versions(manifest_keys).items())
            if (dt, v) in done and rerun.covers(dt)]


def data_docs_prefix(run_id: str | None = None) -> str:
    """The Data Docs site; each quality run's build is also kept under ``runs/<run>/``."""
    return DATA_DOCS_PREFIX if run_id is None else f"{DATA_DOCS_RUNS}{safe_segment(run_id)}/"


def data_docs_shared(key: str) -> str | None:
    """The site root's copy of a static asset a run's build links to (None for any other key).

    GX's static assets (styles, scripts, images: 4 MB, 20 files) are the same in every build,
    so a run's build is kept without them and its pages' ``static/…`` is served from the root's.
    """
    run_and_rest = key[len(DATA_DOCS_RUNS):].split("/", 1) if key.startswith(DATA_DOCS_RUNS) else []
    if len(run_and_rest) == 2 and run_and_rest[1].startswith(DATA_DOCS_STATIC):
        return DATA_DOCS_PREFIX + run_and_rest[1]
    return None


def safe_segment(text: str) -> str:
    """A key segment made of safe characters only (run ids carry ``:`` and ``+``)."""
    return re.sub(r"[^A-Za-z0-9._=-]", "_", text)


# ---------------------------------------------------------------------------- published builds

def features_zone(feature_set: str) -> str:
    return f"features/{feature_set}/"


def features_partition(feature_set: str, dt: date | str) -> str:
    return f"{features_zone(feature_set)}dt={dt_str(dt)}/"


def features_gate_result_key(feature_set: str, dt: date | str, build: str) -> str:
    return f"{quality_results_zone('features/' + feature_set)}dt={dt_str(dt)}/b={build}.json"


def predictions_zone(model_name: str) -> str:
    return f"predictions/{model_name}/"


def predictions_partition(model_name: str, dt: date | str) -> str:
    return f"{predictions_zone(model_name)}dt={dt_str(dt)}/"


def build_prefix(partition: str, build: str) -> str:
    """A build of a partition: written and audited here, visible only once published."""
    if not _BUILD.fullmatch(build):
        raise ValueError(f"build id {build!r} must match {_BUILD.pattern}")
    return f"{partition}b={build}/"


def build_id(*parts: Any) -> str:
    """A deterministic build id from what makes the build (code version, inputs, run)."""
    return lake.sha256_hex(json.dumps(parts, sort_keys=True, default=str).encode())[:16]


def part_name(index: int) -> str:
    return f"part-{index:05d}.snappy.parquet"


@dataclass(frozen=True)
class PublishedPartition:
    """A published partition: its day, a digest of its manifest (the version downstream
    records), the partition's URI and the manifest itself (its ``parts`` are the data)."""

    dt: date
    digest: str
    uri: str
    manifest: dict

    @property
    def parts(self) -> list[str]:
        return list(self.manifest["parts"])


def publish_partition(s3: "S3Client", bucket: str, partition: str, manifest: Mapping[str, Any],
                      *, marked: bool | None = None) -> None:
    """Make a build visible: its manifest (naming its parts) in one PUT, then ``_SUCCESS`` last.

    ``manifest["parts"]`` must name existing keys under a build prefix of ``partition``; they
    were audited before this call. ``marked`` says whether ``_SUCCESS`` already exists (known
    from a listing), saving a HEAD; the marker is never withdrawn, because the manifest swap
    is atomic for readers.
    """
    parts = list(manifest.get("parts", ()))
    if not parts or not all(p.startswith(partition + "b=") for p in parts):
        raise ValueError(f"a published manifest must name parts under {partition}b=…/, got {parts[:3]}")
    lake.put_json(s3, bucket, partition + MANIFEST, dict(manifest))
    if marked is None:
        marked = lake.exists(s3, bucket, partition + SUCCESS)
    if not marked:
        s3.put_object(Bucket=bucket, Key=partition + SUCCESS, Body=b"")


def remove_stale_builds(s3: "S3Client", bucket: str, partition: str, keep: Iterable[str]) -> int:
    """Delete builds of ``partition`` other than ``keep`` (the published one and the one
    before it, so a reader that just read the old manifest can still finish). Returns keys removed."""
    keep_prefixes = tuple(build_prefix(partition, b) for b in keep if b)
    stale = [o.key for o in lake.list_objects(s3, bucket, partition + "b=")
             if not o.key.startswith(keep_prefixes)]
    lake.delete_keys(s3, bucket, stale)
    return len(stale)


def published(s3: "S3Client", bucket: str, zone: str) -> dict[date, PublishedPartition]:
    """Every published partition of a zone (``features/<set>/``, ``predictions/<model>/``):
    one LIST, then the manifests of the partitions that carry ``_SUCCESS`` (in parallel)."""
    keys = {o.key for o in lake.list_objects(s3, bucket, zone)}
    manifests = sorted(k for k in keys if k.endswith("/" + MANIFEST)
                       and k[:-len(MANIFEST)] + SUCCESS in keys and "/b=" not in k)

    def read(key: str) -> PublishedPartition:
        return _published_from(bucket, key[:-len(MANIFEST)], lake.read_bytes(s3, bucket, key))

    with ThreadPoolExecutor(IO_THREADS) as pool:
        return {p.dt: p for p in pool.map(read, manifests)}


def published_days(s3: "S3Client", bucket: str, zone: str) -> list[date]:
    """Days of a zone that carry ``_SUCCESS``: one LIST, no GETs (the stream's hot path)."""
    days = []
    for obj in lake.list_objects(s3, bucket, zone):
        match = _SUCCESS_KEY.search(obj.key)
        if match:
            days.append(date.fromisoformat(match.group(1)))
    return sorted(days)


def published_one(s3: "S3Client", bucket: str, partition: str) -> PublishedPartition | None:
    """The published build of one partition, or None."""
    if not lake.exists(s3, bucket, partition + SUCCESS):
        return None
    return _published_from(bucket, partition, lake.read_bytes(s3, bucket, partition + MANIFEST))


def _published_from(bucket: str, partition: str, manifest_body: bytes) -> PublishedPartition:
    """A published partition from its manifest's bytes (the digest is of those bytes)."""
    manifest = json.loads(manifest_body)
    return PublishedPartition(date.fromisoformat(manifest["dt"]), lake.sha256_hex(manifest_body)[:16],
                              lake.s3_uri(bucket, partition), manifest)


def read_parts(s3: "S3Client", bucket: str, parts: Sequence[str]) -> "pd.DataFrame":
    """Exactly the named Parquet parts as one pandas frame (a manifest's, or a staged build's)."""
    import io

    import pandas as pd

    if not parts:
        raise FileNotFoundError(f"no parquet parts named in s3://{bucket}/")
    frames = [pd.read_parquet(io.BytesIO(lake.read_bytes(s3, bucket, k))) for k in parts]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def read_published(s3: "S3Client", bucket: str, partition: PublishedPartition) -> "pd.DataFrame":
    return read_parts(s3, bucket, partition.parts)


def staged_manifest_key(partition: str, build: str) -> str:
    """The manifest a job writes last into its build: what the gate audits and publish copies."""
    return build_prefix(partition, build) + MANIFEST


def feature_outputs(feature_set: str, targets: Iterable[str], build: str) -> dict[str, dict[str, str]]:
    """Per target day, where the feature job writes its build (the plan carries these, so the
    job itself builds no key)."""
    out = {}
    for dt in targets:
        partition = features_partition(feature_set, dt)
        out[dt] = {"partition": partition, "prefix": build_prefix(partition, build),
                   "manifest": staged_manifest_key(partition, build), "build": build}
    return out


def monitoring_zone(model_name: str) -> str:
    """How the served model did once outcomes landed: ``monitoring/<model>/dt=…/`` (the same
    build/publish layout as features and predictions)."""
    return f"monitoring/{model_name}/"


def monitoring_partition(model_name: str, dt: date | str) -> str:
    return f"{monitoring_zone(model_name)}dt={dt_str(dt)}/"


def current_landed_manifests(s3: "S3Client", bucket: str, dataset: str) -> dict[str, str]:
    """dt -> the manifest key of the current (highest visible) landed version: one LIST."""
    keys = (o.key for o in lake.list_objects(s3, bucket, landing_zone(dataset)))
    return {dt: landing_manifest_key(dataset, dt, v) for dt, v in current_versions(keys).items()}


def validation_keys(s3: "S3Client", bucket: str, dataset: str) -> tuple[list[str], list[str]]:
    """The keys the quality gate plans from, one LIST each: every landed object of ``dataset``
    (its manifests name the versions) and every stored quality result."""
    return ([o.key for o in lake.list_objects(s3, bucket, landing_zone(dataset))],
            [o.key for o in lake.list_objects(s3, bucket, quality_results_zone(dataset))])


# ---------------------------------------------------------------------------- stream zones

def stream_object_sha(object_key: str) -> str:
    return lake.sha256_hex(object_key.encode())[:32]


def ledger_key(object_key: str) -> str:
    """The ledger entry that makes a stream object done (written last, conditionally)."""
    return f"{OBJECTS_LEDGER}{stream_object_sha(object_key)}.json"


def claim_key(event_id: str) -> str:
    return f"{EVENT_CLAIMS}{lake.sha256_hex(event_id.encode())[:32]}.json"


def day_index_prefix(dt: date | str) -> str:
    return f"{DAY_INDEX}dt={dt_str(dt)}/"


def day_index_key(dt: date | str, object_key: str) -> str:
    return day_index_prefix(dt) + object_key


def stream_predictions_prefix(model_name: str, dt: date | str | None = None) -> str:
    base = f"predictions/{model_name}/stream/"
    return base if dt is None else f"{base}dt={dt_str(dt)}/"


def stream_predictions_key(model_name: str, dt: date | str, object_key: str) -> str:
    return f"{stream_predictions_prefix(model_name, dt)}{stream_object_sha(object_key)}.parquet"


def firehose_error_prefix(prefix: str) -> str:
    """Where Firehose puts records it could not deliver under ``prefix`` (its own namespace)."""
    return f"deadletter/{prefix}!{{firehose:error-output-type}}/"


def deadletter_key(object_key: str) -> str:
    return f"{DEADLETTER_PREFIX}{stream_object_sha(object_key)}.json"


def warm_prefix(dt: date | str) -> str:
    return f"{WARM_PREFIX}dt={dt_str(dt)}/"


def arrival_prefixes(since: datetime, until: datetime, prefix: str = STREAM_PREFIX) -> list[str]:
    """Firehose's hourly arrival prefixes (``<prefix>YYYY/MM/DD/HH/``, UTC) spanning
    ``[since, until]`` (pure)."""
    out, hour = [], since.replace(minute=0, second=0, microsecond=0)
    while hour <= until:
        out.append(f"{prefix}{hour:%Y/%m/%d/%H}/")
        hour += timedelta(hours=1)
    return out


# ---------------------------------------------------------------------------- artifacts

def model_zone(model_name: str) -> str:
    """Names the registered model's asset; the model itself lives in MLflow's artifact store."""
    return f"artifacts/models/{model_name}/"


def spark_artifact_key(name: str) -> str:
    return f"{SPARK_ARTIFACTS}{name}"


def feature_plan_key(feature_set: str, digest: str) -> str:
    return f"artifacts/plans/{feature_set}/{digest}.json"


def emr_entry_key(digest: str) -> str:
    """The job's entry file, named by its content: ``artifacts/spark/main-<sha12>.py``."""
    return f"{SPARK_ARTIFACTS}main-{digest[:12]}.py"


def emr_log_uri(bucket: str) -> str:
    return f"s3://{bucket}/{EMR_LOGS}"


def emr_step_log_uri(bucket: str, cluster_id: str, step_id: str) -> str:
    return f"{emr_log_uri(bucket)}{cluster_id}/steps/{step_id}/"


# ---------------------------------------------------------------------------- reading the lake back

_DAY_ENTRY = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/(?:(v=\d{4,}|b=[A-Za-z0-9._-]{1,64}|[0-9a-f]{12})/)?([^/]+)$")


def day_partitions_prefix(zone: str) -> str:
    """The prefix of a zone's day partitions (``<zone>dt=``) and nothing else: a LIST of it
    leaves out what else lives under the zone (the stream's ``predictions/<model>/stream/``)."""
    return f"{zone}dt="


@dataclass
class DayEntries:
    """What one LIST says about one day of one zone (no GET): the landed versions with a
    manifest, the version / content-addressed directories, the builds, ``_SUCCESS``, the
    quality results' versions (``v=NNNN.json``) and the validated ``_pointer.json``."""

    manifests: set[int]
    versions: set[int]
    builds: set[str]
    rejects: set[str]
    results: set[int]
    success: bool = False
    pointer: bool = False


def day_entries(zone: str, keys: Iterable[str]) -> dict[str, DayEntries]:
    """dt -> :class:`DayEntries` from the keys of one zone prefix (pure).

    Understands every day-partitioned layout of the module docstring: ``v=NNNN/`` versions,
    ``b=<build>/`` builds, landing's ``<sha12>/`` rejects, ``v=NNNN.json`` results and
    ``_manifest.json`` / ``_SUCCESS`` / ``reason.json`` / ``_pointer.json`` markers."""
    days: dict[str, DayEntries] = {}
    for key in keys:
        if not key.startswith(zone):
            continue
        match = _DAY_ENTRY.match(key[len(zone):])
        if match is None:
            continue
        dt, directory, name = match.groups()
        day = days.setdefault(dt, DayEntries(set(), set(), set(), set(), set()))
        if directory is None:
            if name == SUCCESS:
                day.success = True
            elif name == POINTER:
                day.pointer = True
            elif (m := re.fullmatch(r"v=(\d{4,})\.json", name)) is not None:
                day.results.add(int(m.group(1)))
        elif directory.startswith("v="):
            version = int(directory[2:])
            day.versions.add(version)
            if name == MANIFEST:
                day.manifests.add(version)
        elif directory.startswith("b="):
            day.builds.add(directory[2:])
        else:
            day.rejects.add(directory)
    return days


def validation_run_name(dataset: str, dt: date | str, version: int) -> str:
    """The quality gate's GX run name for one partition version (no spaces: it becomes a key)."""
    return f"{dataset}_dt={dt_str(dt)}_v={version:04d}"


def validation_pages_prefix(run_id: str | None = None) -> str:
    """Where a Data Docs build keeps its validation pages (``…/validations/<suite>/<run name>/…``)."""
    return data_docs_prefix(run_id) + "validations/"


def validation_page(keys: Iterable[str], *, dataset: str, dt: date | str, version: int) -> str | None:
    """The key of a partition version's validation page among a Data Docs build's keys (pure)."""
    marker = f"/{validation_run_name(dataset, dt, version)}/"
    pages = sorted(k for k in keys if marker in k and k.endswith(".html"))
    return pages[-1] if pages else None


def model_version_of_build(build: str) -> str | None:
    """The model version a predictions build was scored with (builds are ``m<version>-<digest>``)."""
    match = re.fullmatch(r"m([^-]+)-.+", build)
    return match.group(1) if match else None


def predictions_build(model_version: str, features_digest: str) -> str:
    """A predictions build: the model version and the features digest it scored."""
    return f"m{model_version}-{features_digest}"


def quarantine_zone(dataset: str) -> str:
    return f"{QUARANTINE_ROOT}{dataset}/"


# --------------------------------------------------------------------------- Kinesis source
# Per shard: each micro-batch taken (immutable, named by its first sequence number, so a re-run
# after a crash takes the same batch) and the checkpoint (overwritten, written last).
KINESIS_LEDGER = f"{LEDGER_PREFIX}kinesis/"


def kinesis_batch_key(stream: str, shard_id: str, first_sequence: str) -> str:
    return f"{KINESIS_LEDGER}{safe_segment(stream)}/batches/{safe_segment(shard_id)}/{first_sequence}.jsonl"


def kinesis_batches_prefix(stream: str) -> str:
    return f"{KINESIS_LEDGER}{safe_segment(stream)}/batches/"


def kinesis_checkpoint_key(stream: str, shard_id: str) -> str:
    return f"{KINESIS_LEDGER}{safe_segment(stream)}/checkpoints/{safe_segment(shard_id)}.json"
