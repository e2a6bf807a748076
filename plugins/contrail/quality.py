"""The data-quality gate: validate one partition against a hand-written GX suite.

Consumes a partition as a pandas frame (a landed day of ``flights`` / ``weather``, or one dt
of a feature set) and produces a :class:`QualityReport`: passed or not, every broken rule with
its severity and a few offending values, and the raw GX result for the ``quality/`` zone.
Critical rules block the partition (it goes to ``quarantine/``); warning rules are recorded
and shown but do not block.

Suites live in ``expectations/<suite>.json`` in GX 1.x form, with two contrail additions:

* ``meta.severity`` (``critical`` | ``warning``) and ``meta.why`` on every expectation;
* runtime parameters written ``{"$param": "<name>"}``: reference lists (``airlines``,
  ``airports``) and the partition date (``partition_dates`` = ``[dt]``). They become GX suite
  parameters, so one suite object serves every partition.

Before validation, :func:`prepare` adds a few derived columns named ``_<what>`` (pure
pandas): GX has no "HHMM is a valid time" or "row belongs to partition dt" expectation, so
the suites check the derived minute / date / time-zone-consistency columns instead. The
derived columns are listed in each suite's ``meta.derived_columns``.

GX is imported lazily (about 10 s of CPU): create one :class:`QualityGate` per task and
validate every pending partition with it.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import mimetypes
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from contrail import contract
from contrail.catalog import DATA_DOCS_PREFIX, dt_str, validation_run_name
from contrail.lake import s3_uri

if TYPE_CHECKING:  # pragma: no cover
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

# package data: plugins/contrail/expectations links the top-level expectations/ folder
SUITES_DIR = Path(str(files("contrail").joinpath("expectations")))
SUITES: tuple[str, ...] = ("flights_raw", "weather_raw", "features")
SEVERITIES: tuple[str, ...] = ("critical", "warning")
OUTCOME_COLUMNS: tuple[str, ...] = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")

_LOCAL_TZ = "America/New_York"
_TIME_HOUR_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_EXAMPLES = 5  # unexpected values kept per broken rule
BATCH = 31  # partitions per GX validation in a catch-up: a month of days, bounded memory


# --------------------------------------------------------------------------- parsing, prepare

def read_landed_csv(body: bytes) -> pd.DataFrame:
    """Parse a landed CSV export (gzip or plain) with the dtypes the data contract gives.

    Columns are typed by name from :mod:`contrail.contract`: strings and timestamps stay
    text (``"007"`` is not 7), doubles are ``float64`` even when every value is whole,
    integers are ``int64`` (``Int64`` when nullable). Only the contract's null tokens
    (``NA`` and the empty field) are null: an airport code must stay a string. Numbers are
    parsed correctly rounded (``round_trip``), the way Spark's ``Double.parseDouble`` does.
    A column that holds values of another type is left as parsed, so the suite's type rule
    reports it instead of the parser failing. Landing has already rejected every drop this
    reader and the Spark reader would read differently (see :mod:`contrail.landing`).
    """
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    dtypes = contract.pandas_dtypes()
    na_tokens = sorted({t for ds in contract.load().datasets.values() for t in ds.na_tokens})
    text_columns = {name: object for name, dtype in dtypes.items() if dtype == "object"}
    frame = pd.read_csv(io.BytesIO(body), keep_default_na=False, na_values=na_tokens, dtype=text_columns,
                        float_precision="round_trip", low_memory=False)
    for col in frame.columns:
        dtype = dtypes.get(col, "object")
        if dtype != "object" and str(frame[col].dtype) != dtype:
            try:
                frame[col] = frame[col].astype(dtype)
            except (TypeError, ValueError):
                pass
    return frame


def _numeric(frame: pd.DataFrame, col: str) -> pd.Series:
    """``col`` as plain float64, NaN where null or not a number (numpy arithmetic: fast on every row)."""
    if col not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    return pd.to_numeric(frame[col], errors="coerce").astype("float64")


def _on_distinct(values: pd.Series, derive: Callable[[pd.Series], pd.DataFrame]) -> pd.DataFrame:
    """``derive`` computed once per distinct non-null value of ``values``, spread back to every row.

    A day's rows share one date and a few dozen ``time_hour`` values, and date formatting and
    time-zone conversion are per-element Python in pandas: this keeps them off the row count.
    Null values give null.
    """
    codes, uniques = pd.factorize(values)
    derived = derive(pd.Series(uniques)).reset_index(drop=True)
    out = derived.reindex(codes)  # code -1 (null) is no label: null
    out.index = values.index
    return out


def _local_date(frame: pd.DataFrame) -> pd.Series:
    """``year``/``month``/``day`` as an ISO date string; null where they do not form a date."""
    parts = pd.DataFrame({k: _numeric(frame, k) for k in ("year", "month", "day")})
    if parts.empty:
        return pd.Series([], index=frame.index, dtype="object")
    stamps = pd.to_datetime(parts, errors="coerce")
    text = _on_distinct(stamps, lambda s: s.dt.strftime("%Y-%m-%d").astype("object").to_frame("date"))["date"]
    return text.astype("object").where(stamps.notna(), None)


def _time_hour_matches(frame: pd.DataFrame, local_date: pd.Series, hour: pd.Series) -> pd.Series:
    """True where ``time_hour`` (UTC text) is the instant of the local date and hour."""
    if "time_hour" not in frame.columns:
        return pd.Series(False, index=frame.index)

    def local_date_and_hour(text: pd.Series) -> pd.DataFrame:
        local = pd.to_datetime(text, format=_TIME_HOUR_FORMAT, utc=True, errors="coerce").dt.tz_convert(_LOCAL_TZ)
        return pd.DataFrame({"date": local.dt.strftime("%Y-%m-%d"), "hour": local.dt.hour.astype("float64")})

    local = _on_distinct(frame["time_hour"], local_date_and_hour)
    return ((local["date"] == local_date) & (local["hour"] == hour)).fillna(False).astype(bool)


_DAY_MINUTES = 24 * 60
# Magnus formula constants (Alduchov & Eskridge 1996), temperatures in degrees C
_MAGNUS_A, _MAGNUS_B = 17.625, 243.04


def _clock_minutes(hhmm: pd.Series) -> pd.Series:
    """Minutes since local midnight of an ``HHMM`` time (2400 gives 1440, the same clock as 0)."""
    return (hhmm // 100) * 60 + hhmm % 100


def _magnus_humidity(temp_f: pd.Series, dewp_f: pd.Series) -> pd.Series:
    """Relative humidity (percent) that a temperature and dew point (degrees F) imply."""
    t, d = (temp_f - 32) * 5 / 9, (dewp_f - 32) * 5 / 9
    return 100 * np.exp(_MAGNUS_A * d / (_MAGNUS_B + d) - _MAGNUS_A * t / (_MAGNUS_B + t))


def _text(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame.columns:
        return pd.Series(None, index=frame.index, dtype="object")
    return frame[col]


def _flights_columns(df: pd.DataFrame) -> dict[str, pd.Series]:
    """The derived columns of ``flights_raw`` (see the suite's ``meta.derived_columns``)."""
    flight_date = _local_date(df)
    n = {c: _numeric(df, c) for c in ("sched_dep_time", "dep_time", "dep_delay", "sched_arr_time", "arr_time",
                                     "arr_delay", "air_time", "distance", "hour")}
    origin, dest = _text(df, "origin"), _text(df, "dest")
    clock = {c: _clock_minutes(n[c]) for c in ("sched_dep_time", "dep_time", "sched_arr_time", "arr_time")}
    # time between the two local clocks; the destination's zone differs by -6 h (HNL) .. +1 h (SJU)
    block_clock = (clock["arr_time"] - clock["dep_time"]) % _DAY_MINUTES
    route_distances = (pd.DataFrame({"origin": origin, "dest": dest, "miles": n["distance"]})
                       .groupby(["origin", "dest"], dropna=False)["miles"].transform("nunique"))
    measures = {
        "_sched_dep_hour": n["sched_dep_time"] // 100,
        "_sched_dep_minute": n["sched_dep_time"] % 100,
        "_sched_arr_minute": n["sched_arr_time"] % 100,
        "_dep_minute": n["dep_time"] % 100,
        "_arr_minute": n["arr_time"] % 100,
        # delay minus the clock difference, modulo a day (a flight delayed past midnight has an
        # actual time on the other side of 00:00): 0 where they agree, null where either is null
        "_dep_delay_clock_residual": (n["dep_delay"] - (clock["dep_time"] - clock["sched_dep_time"])) % _DAY_MINUTES,
        "_arr_delay_clock_residual": (n["arr_delay"] - (clock["arr_time"] - clock["sched_arr_time"])) % _DAY_MINUTES,
        "_air_time_over_block_clock": n["air_time"] - block_clock,
        "_implied_mph": n["distance"] / (n["air_time"] / 60),
    }
    return {
        "_flight_date": flight_date,
        "_time_hour_matches_schedule": _time_hour_matches(df, flight_date, n["hour"]),
        **{k: v.astype("Float64") for k, v in measures.items()},  # nullable: NaN is shown as null
        "_origin_is_dest": (origin.eq(dest) & origin.notna()).astype(bool),
        "_route_distances": route_distances.where(n["distance"].notna()).astype("Int64"),
    }


def prepare(df: pd.DataFrame, suite: str) -> pd.DataFrame:
    """Return a copy of ``df`` with the derived ``_columns`` the suite checks (pure, vectorised pandas).

    The suites' ``meta.derived_columns`` say what each one is. Missing or unparsable source
    columns give nulls, never an exception: the suite's own column and type rules then say
    what is wrong.
    """
    if suite == "flights_raw":
        return df.assign(**_flights_columns(df))
    if suite == "weather_raw":
        obs_date = _local_date(df)
        humid_implied = _magnus_humidity(_numeric(df, "temp"), _numeric(df, "dewp"))
        return df.assign(
            _obs_date=obs_date,
            _time_hour_matches_local=_time_hour_matches(df, obs_date, _numeric(df, "hour")),
            _humid_minus_magnus=(_numeric(df, "humid") - humid_implied).astype("Float64"),
        )
    return df.copy()


# --------------------------------------------------------------------------- suites

def load_suite_document(suite: str, *, suites_dir: Path = SUITES_DIR) -> dict[str, Any]:
    """The suite JSON as written, checked: every expectation has a known ``meta.severity``."""
    path = Path(suites_dir) / f"{suite}.json"
    doc = json.loads(path.read_text())
    if doc.get("name") != suite:
        raise ValueError(f"{path}: name {doc.get('name')!r} does not match the file name")
    for i, exp in enumerate(doc["expectations"]):
        severity = exp.get("meta", {}).get("severity")
        if severity not in SEVERITIES:
            raise ValueError(f"{path}: expectation #{i} ({exp.get('type')}) has severity {severity!r}, "
                             f"expected one of {SEVERITIES}")
    return doc


def _to_gx_parameters(value: Any, found: set[str]) -> Any:
    """``{"$param": name}`` -> GX's ``{"$PARAMETER": name}``, anywhere in a kwargs tree."""
    if isinstance(value, dict):
        if set(value) == {"$param"}:
            found.add(value["$param"])
            return {"$PARAMETER": value["$param"]}
        return {k: _to_gx_parameters(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_gx_parameters(v, found) for v in value]
    return value


def suite_parameters(doc: Mapping[str, Any]) -> set[str]:
    """Names of the runtime parameters a suite document uses."""
    found: set[str] = set()
    _to_gx_parameters([e["kwargs"] for e in doc["expectations"]], found)
    return found


def default_references() -> dict[str, list[str]]:
    """The reference lists of the data contract (``airlines``, ``airports``)."""
    return contract.references()


# --------------------------------------------------------------------------- report

@dataclass(frozen=True)
class RuleFailure:
    """One broken expectation."""

    severity: str
    expectation: str
    columns: tuple[str, ...]
    kwargs: str
    why: str = ""
    observed: Any = None
    unexpected_count: int | None = None
    element_count: int | None = None
    unexpected_examples: tuple[Any, ...] = ()
    error: str | None = None

    def describe(self) -> str:
        where = ", ".join(self.columns) if self.columns else "table"
        text = f"[{self.severity}] {self.expectation}({where}; {self.kwargs})"
        if self.error:
            return f"{text}: could not be evaluated: {self.error}"
        if self.unexpected_count is not None:
            of = f" of {self.element_count}" if self.element_count is not None else ""
            text += f": {self.unexpected_count}{of} unexpected"
            if self.unexpected_examples:
                text += f", e.g. {list(self.unexpected_examples)}"
        elif self.observed is not None:
            text += f": observed {self.observed!r}"
        return f"{text} ({self.why})" if self.why else text


@dataclass(frozen=True)
class QualityReport:
    """The verdict on one partition version."""

    dataset: str
    dt: date
    version: int
    suite: str
    passed: bool
    row_count: int
    failures: tuple[RuleFailure, ...] = ()
    warnings: tuple[RuleFailure, ...] = ()
    result_json: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def partition(self) -> str:
        return f"{self.dataset} dt={dt_str(self.dt)} v={self.version:04d}"

    def summary(self) -> str:
        """One message for the task log / failure: the partition and each broken rule."""
        verdict = "PASSED" if self.passed else "FAILED"
        head = (f"quality {verdict}: {self.partition} (suite {self.suite}, {self.row_count} rows): "
                f"{len(self.failures)} critical rule(s) broken, {len(self.warnings)} warning(s)")
        lines = [head, *("  " + f.describe() for f in self.failures),
                 *("  " + w.describe() for w in self.warnings)]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable (what the quality zone stores, next to the GX result)."""
        out = asdict(self)
        out["dt"] = dt_str(self.dt)
        out["failures"] = [_jsonable(asdict(f)) for f in self.failures]
        out["warnings"] = [_jsonable(asdict(w)) for w in self.warnings]
        return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _kwargs_summary(kwargs: Mapping[str, Any], columns: tuple[str, ...]) -> str:
    parts = []
    for key, value in kwargs.items():
        if key in ("batch_id", "condition_parser") or (key in _COLUMN_KWARGS and columns):
            continue
        if isinstance(value, (list, tuple, set)) and len(value) > 12:
            parts.append(f"{key}=<{len(value)} values>")
        else:
            parts.append(f"{key}={value!r}")
    return ", ".join(parts)


_COLUMN_KWARGS = ("column", "column_A", "column_B", "column_list")


def _columns(expectation: str, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """The column(s) a rule is about; () for table-level rules (their lists stay in kwargs)."""
    if expectation.startswith("expect_table_"):
        return ()
    if "column" in kwargs:
        return (kwargs["column"],)
    if "column_A" in kwargs:
        return (kwargs["column_A"], kwargs["column_B"])
    if isinstance(kwargs.get("column_list"), list):
        return tuple(kwargs["column_list"])
    return ()


def _exception_message(info: Mapping[str, Any]) -> str | None:
    """GX reports an exception flat, or per failed metric in a nested mapping."""
    if "raised_exception" in info:
        return (info.get("exception_message") or "error") if info["raised_exception"] else None
    messages = [_exception_message(v) for v in info.values() if isinstance(v, Mapping)]
    found = sorted({m for m in messages if m})
    return "; ".join(found) or None


def _rule_failure(result: dict[str, Any]) -> RuleFailure:
    config = result["expectation_config"]
    meta = config.get("meta") or {}
    res = result.get("result") or {}
    error = _exception_message(result.get("exception_info") or {})
    columns = _columns(config["type"], config["kwargs"])
    return RuleFailure(
        severity=meta.get("severity", "critical"),
        expectation=config["type"],
        columns=columns,
        kwargs=_kwargs_summary(config["kwargs"], columns),
        why=meta.get("why", ""),
        # details (e.g. which columns are missing) says more than a whole observed column list
        observed=res.get("details", res.get("observed_value")),
        unexpected_count=res.get("unexpected_count"),
        element_count=res.get("element_count"),
        unexpected_examples=tuple(res.get("partial_unexpected_list") or ())[:_EXAMPLES],
        error=error,
    )


def report_from_result(result_json: dict[str, Any], *, dataset: str, dt: date, version: int, suite: str,
                       row_count: int) -> QualityReport:
    """The verdict a GX suite result (JSON) gives on one partition version."""
    broken = [_rule_failure(r) for r in result_json["results"] if not r["success"]]
    return QualityReport(
        dataset=dataset, dt=dt, version=version, suite=suite,
        passed=not any(f.severity == "critical" for f in broken),
        row_count=row_count,
        failures=tuple(f for f in broken if f.severity == "critical"),
        warnings=tuple(f for f in broken if f.severity != "critical"),
        result_json=result_json,
    )


# --------------------------------------------------------------------------- the gate

def _register_custom_expectations() -> None:
    """Define contrail's own expectations (GX registers them when the class is created)."""
    from typing import ClassVar

    from great_expectations.expectations.expectation import BatchExpectation

    if getattr(_register_custom_expectations, "done", False):
        return

    class ExpectTableColumnsToNotContain(BatchExpectation):
        """Expect none of ``column_list`` to be a column of the table (e.g. leaked outcomes).

        GX ships ``expect_column_to_exist`` but no negation; ``expect_table_columns_to_match_set``
        with ``exact_match`` would also reject harmless extra columns.
        """

        column_list: list[str]
        metric_dependencies: ClassVar[tuple[str, ...]] = ("table.columns",)
        success_keys: ClassVar[tuple[str, ...]] = ("column_list",)
        args_keys: ClassVar[tuple[str, ...]] = ("column_list",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
            present = [c for c in metrics["table.columns"] if c in set(self.column_list)]
            return {"success": not present, "result": {"observed_value": present}}

    _register_custom_expectations.done = True  # type: ignore[attr-defined]


class QualityGate:
    """Validates partitions against the suites in ``expectations/``; one per task.

    ``references`` overrides the reference lists (default: the data contract's).
    ``docs_dir`` is where :meth:`build_data_docs` writes the site (default: a temporary
    directory removed with the gate: pass one to keep the site longer than the gate).
    """

    def __init__(
        self,
        *,
        suites_dir: Path = SUITES_DIR,
        references: Mapping[str, Sequence[str]] | None = None,
        docs_dir: Path | None = None,
    ) -> None:
        self.suites_dir = Path(suites_dir)
        self._references = dict(references) if references is not None else None
        self._docs_dir = Path(docs_dir) if docs_dir is not None else None
        self._validations: dict[tuple[str, str], Any] = {}
        self._suites: dict[str, Any] = {}
        # batched partitions' results, put in GX's store when the Data Docs are built
        self._docs_pending: list[tuple[str, str, Any, dict[str, Any]]] = []
        self.reports: list[QualityReport] = []

    @cached_property
    def references(self) -> dict[str, list[str]]:
        refs = default_references() if self._references is None else self._references
        return {k: list(v) for k, v in refs.items()}

    @cached_property
    def docs_dir(self) -> Path:
        if self._docs_dir is not None:
            return self._docs_dir
        # a site of the gate's own, removed with the gate (or at exit): a long-lived task
        # process runs many gates and must not leave a directory behind for each
        self._own_docs = tempfile.TemporaryDirectory(prefix="contrail-data-docs-")
        return Path(self._own_docs.name)

    @cached_property
    def context(self) -> Any:
        """An ephemeral GX context (nothing to deploy) with a local Data Docs site."""
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _register_custom_expectations()
        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        ctx.add_data_docs_site(
            site_name="contrail",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(self.docs_dir)},
            },
        )
        ctx.data_sources.add_pandas("lake")
        return ctx

    def _suite(self, name: str) -> Any:
        if name not in self._suites:
            import great_expectations as gx
            from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

            doc = load_suite_document(name, suites_dir=self.suites_dir)
            missing = suite_parameters(doc) - set(self.references) - {"partition_dates"}
            if missing:
                raise ValueError(f"suite {name} needs reference lists {sorted(missing)}")
            suite = gx.ExpectationSuite(name=name, meta=doc.get("meta", {}))
            for exp in doc["expectations"]:
                suite.add_expectation_configuration(ExpectationConfiguration(
                    type=exp["type"], kwargs=_to_gx_parameters(exp["kwargs"], set()),
                    meta=exp["meta"], severity=exp["meta"]["severity"]))
            # GX merges two expectations of one type on one column: a silent rule loss
            if len(suite.expectations) != len(doc["expectations"]):
                raise ValueError(f"suite {name}: {len(doc['expectations'])} expectations written but "
                                 f"{len(suite.expectations)} kept (same type on the same column twice?)")
            self._suites[name] = self.context.suites.add(suite)
        return self._suites[name]

    def _validation(self, suite: str, dataset: str) -> Any:
        key = (suite, dataset)
        if key not in self._validations:
            import great_expectations as gx

            source = self.context.data_sources.get("lake")
            try:
                asset = source.get_asset(dataset)
            except LookupError:
                asset = source.add_dataframe_asset(dataset)
            batch = (asset.batch_definitions[0] if asset.batch_definitions
                     else asset.add_batch_definition_whole_dataframe("partition"))
            self._validations[key] = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{suite}@{dataset}", data=batch, suite=self._suite(suite)))
        return self._validations[key]

    def validate(
        self, df: pd.DataFrame, *, suite: str, dataset: str, dt: date, version: int
    ) -> QualityReport:
        """Validate one partition version; the report says whether it may pass to ``validated/``."""
        from great_expectations.core.run_identifier import RunIdentifier

        definition = self._validation(suite, dataset)
        params = {**self.references, "partition_dates": [dt_str(dt)]}
        result = definition.run(
            batch_parameters={"dataframe": prepare(df, suite)},
            expectation_parameters=params,
            result_format={"result_format": "BASIC", "partial_unexpected_count": 20},
            run_id=RunIdentifier(run_name=validation_run_name(dataset, dt, version)),
        )
        result_json = _jsonable(result.to_json_dict())
        return self._report(report_from_result(result_json, dataset=dataset, dt=dt, version=version, suite=suite,
                                               row_count=len(df)))

    def _report(self, report: QualityReport) -> QualityReport:
        self.reports.append(report)
        log.info("%s", report.summary())
        return report

    def _store_deferred(self) -> None:
        from contrail.quality_batch import store_results

        store_results(self.context.validation_results_store, self._docs_pending)
        self._docs_pending.clear()

    def validate_many(
        self, partitions: Sequence[tuple[pd.DataFrame, date, int]], *, suite: str, dataset: str
    ) -> list[QualityReport]:
        """Validate several partition versions of one dataset; one report each, in order, each
        the one :meth:`validate` gives. Chunks of :data:`BATCH` partitions share one GX
        validation (see :mod:`contrail.quality_batch`)."""
        from contrail.quality_batch import validate_chunk

        reports: list[QualityReport] = []
        for start in range(0, len(partitions), BATCH):
            reports += validate_chunk(self, partitions[start:start + BATCH], suite=suite, dataset=dataset)
        return reports

    def build_data_docs(self) -> Path:
        """Render the Data Docs site for every validation this gate ran; returns the site dir."""
        self._store_deferred()
        self.context.build_data_docs(site_names=["contrail"])
        index = self.docs_dir / "index.html"
        if not index.exists():
            raise RuntimeError(f"GX built no Data Docs index at {index}")
        return self.docs_dir


_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "application/javascript",
                  ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png",
                  ".ico": "image/x-icon", ".woff": "font/woff", ".woff2": "font/woff2"}


def publish_data_docs(s3: "S3Client", bucket: str, site_dir: Path, prefix: str = DATA_DOCS_PREFIX) -> str:
    """Upload a built Data Docs site under ``prefix`` (the ``quality/`` zone allows overwrite).

    GX 1.x has no S3 site store, so the files are put one by one with a content type a
    browser (or an S3 website endpoint) renders. A file whose content the prefix already
    holds (its ETag is its MD5) is not put again, and a run's build (any prefix but the site
    root) is kept without GX's static assets: its pages use the root's (see
    :func:`contrail.catalog.data_docs_shared`), so a year of quality runs keeps one copy of
    them, not one per run. Returns the ``s3://`` URI of ``index.html``.
    """
    import hashlib

    from contrail.catalog import DATA_DOCS_STATIC
    from contrail.lake import list_objects

    site_dir = Path(site_dir)
    if not (site_dir / "index.html").exists():
        raise FileNotFoundError(f"{site_dir} has no index.html: build the Data Docs first")
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    own_static = prefix == DATA_DOCS_PREFIX
    held = {o.key: o.etag for o in list_objects(s3, bucket, prefix)}
    for path in sorted(p for p in site_dir.rglob("*") if p.is_file()):
        name = path.relative_to(site_dir).as_posix()
        if name.startswith(DATA_DOCS_STATIC) and not own_static:
            continue
        body = path.read_bytes()
        if held.get(prefix + name) == hashlib.md5(body).hexdigest():
            continue
        content_type = (_CONTENT_TYPES.get(path.suffix.lower())
                        or mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=body, ContentType=content_type)
    return s3_uri(bucket, prefix + "index.html")
