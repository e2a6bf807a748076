"""Validating a catch-up: many partitions of one dataset in one GX validation, each partition
judged exactly as if it had been validated alone.

GX's cost is per expectation and per validation (building the metric graph, pydantic
configurations, row-condition queries), hardly per row: a flights day and a month of flights
days cost about the same to validate. So :func:`validate_chunk` concatenates the prepared
frames of a chunk of partitions with the same columns and dtypes, runs the whole suite over
the concatenation once (``COMPLETE`` result: the unexpected rows' index) and attributes every
result back to its partition:

* a row rule (values in a set or range, a pattern, nulls, a pair of columns) is judged per
  row, so a partition none of whose rows is unexpected gets GX's own "nothing unexpected"
  result (``_format_map_output``) with its own element and missing counts, computed on its
  rows with the rule's domain (``row_condition``, ``ignore_row_if``). The counts are checked
  against GX's totals for the whole concatenation; any disagreement validates the chunk alone;
* a rule that needs the partition itself (row count, min / max, non-null share, distinct
  values, unique keys, ``partition_dates``) is computed per partition from its frame and
  judged by the expectation's own ``_validate``; table-level rules about columns and dtypes
  are the same for every partition of a chunk (they all have the same columns and dtypes);
* a partition with any unexpected row, any rule this module does not know, an empty frame or
  columns of its own is validated alone (the rare broken day keeps GX's full result).

Each partition still gets its own result, run name and Data Docs validation page; the test
``test_quality_batch.py`` compares every batched result with the one validating alone gives.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from contrail.catalog import dt_str, validation_run_name

if TYPE_CHECKING:  # pragma: no cover
    from contrail.quality import QualityGate, QualityReport

log = logging.getLogger(__name__)

RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 20}
_COLUMN_MAP = {"expect_column_values_to_be_in_set", "expect_column_values_to_be_between",
               "expect_column_values_to_match_regex", "expect_column_values_to_be_in_type_list"}
_NULL_MAP = {"expect_column_values_to_not_be_null", "expect_column_values_to_be_null"}
_PAIR_MAP = {"expect_column_pair_values_to_be_equal", "expect_column_pair_values_a_to_be_greater_than_b"}
_COMPOUND = "expect_compound_columns_to_be_unique"
_UNIQUE = {_COMPOUND, "expect_column_values_to_be_unique"}  # unique within a partition, not across
_SAME_FOR_ALL = {"expect_table_columns_to_match_set", "expect_table_columns_to_not_contain"}
_AGGREGATE = {"expect_table_row_count_to_be_between", "expect_column_min_to_be_between",
              "expect_column_max_to_be_between", "expect_column_proportion_of_non_null_values_to_be_between",
              "expect_column_distinct_values_to_equal_set"}
KNOWN = _COLUMN_MAP | _NULL_MAP | _PAIR_MAP | _UNIQUE | _SAME_FOR_ALL | _AGGREGATE


def schema(frame: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    """Columns and dtypes: partitions with the same schema can share one validation."""
    return tuple((str(c), str(t)) for c, t in frame.dtypes.items())


class _Attribution(Exception):
    """The batched result cannot be split exactly: validate the chunk's partitions alone."""


def _partition_date_rules(doc: dict[str, Any]) -> dict[tuple[str, Any], list[str]]:
    """(type, column) -> the kwargs a suite fills with ``partition_dates`` (GX orders its results
    its own way, so rules are found by what they are, not by position)."""
    rules: dict[tuple[str, Any], list[str]] = {}
    for e in doc["expectations"]:
        names = [k for k, v in e["kwargs"].items() if isinstance(v, dict) and v.get("$param") == "partition_dates"]
        if names:
            rules[(e["type"], e["kwargs"].get("column"))] = names
    return rules


def _rule_key(config: dict[str, Any]) -> tuple[str, Any]:
    return config["type"], config["kwargs"].get("column")


class _Chunk:
    """The concatenation of a chunk's prepared frames and which partition owns each row."""

    def __init__(self, frames: Sequence[pd.DataFrame]):
        self.frames = list(frames)
        self.frame = pd.concat(self.frames, ignore_index=True)
        self.owner = np.repeat(np.arange(len(self.frames)), [len(f) for f in self.frames])
        self._domains: dict[str, np.ndarray] = {}

    def domain(self, kwargs: dict[str, Any]) -> np.ndarray:
        """Row mask of a rule's domain: its ``row_condition`` applied as GX's pandas engine does."""
        condition = kwargs.get("row_condition")
        if not condition:
            return np.ones(len(self.frame), dtype=bool)
        if isinstance(condition, dict) and condition.get("type") == "pass_through":
            query, options = condition["pass_through_filter"], {}
        elif isinstance(condition, str) and kwargs.get("condition_parser") == "pandas":
            query, options = condition, {"parser": "pandas"}
        else:
            raise _Attribution(f"row_condition {condition!r} is not a pandas query")
        if query not in self._domains:
            mask = np.zeros(len(self.frame), dtype=bool)
            mask[self.frame.query(query, **options).index.to_numpy()] = True
            self._domains[query] = mask
        return self._domains[query]

    def per_partition(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self.owner[mask], minlength=len(self.frames))


def _missing_mask(chunk: _Chunk, kind: str, kwargs: dict[str, Any]) -> np.ndarray | None:
    """Rows a row rule counts as missing (None: the rule reports no missing count)."""
    frame = chunk.frame
    if kind in _NULL_MAP:
        return None
    if kind in _COLUMN_MAP or "column" in kwargs:
        return frame[kwargs["column"]].isna().to_numpy()
    if kind in _PAIR_MAP:
        a, b = frame[kwargs["column_A"]].isna().to_numpy(), frame[kwargs["column_B"]].isna().to_numpy()
        ignore = kwargs.get("ignore_row_if", "both_values_are_missing")
        return {"both_values_are_missing": a & b, "either_value_is_missing": a | b,
                "neither": np.zeros(len(frame), dtype=bool)}[ignore]
    nulls = frame[list(kwargs["column_list"])].isna().to_numpy()
    ignore = kwargs.get("ignore_row_if", "all_values_are_missing")
    return {"all_values_are_missing": nulls.all(axis=1), "any_value_is_missing": nulls.any(axis=1),
            "never": np.zeros(len(frame), dtype=bool)}[ignore]


def _map_results(chunk: _Chunk, kind: str, config: dict[str, Any], batch: dict[str, Any],
                 dirty: set[int]) -> list[dict[str, Any] | None]:
    """Each partition's result of a row rule (None where it has unexpected rows: judged alone)."""
    from great_expectations.expectations.expectation import (
        _format_map_output,
        _mostly_success,
        parse_result_format,
    )

    kwargs = config["kwargs"]
    domain = chunk.domain(kwargs)
    missing = _missing_mask(chunk, kind, kwargs)
    elements = chunk.per_partition(domain)
    missing_counts = None if missing is None else chunk.per_partition(domain & missing)
    res = batch.get("result") or {}
    # GX's totals over the concatenation are the sums of the partitions' counts
    if int(elements.sum()) != res.get("element_count") or (
            missing_counts is not None and int(missing_counts.sum()) != res.get("missing_count")):
        raise _Attribution(f"{kind}: counts do not add up to GX's totals")
    unexpected_by: dict[int, list[Any]] = {}
    if kind not in _UNIQUE:
        index = np.asarray(res.get("unexpected_index_list") or [], dtype=int)
        if len(index) != (res.get("unexpected_count") or 0):
            raise _Attribution(f"{kind}: {len(index)} unexpected rows indexed, {res.get('unexpected_count')} counted")
        # GX lists at most 200 unexpected values over the batch; the index is complete, and the
        # values a partition's result shows are its own first ones, read back from its rows
        values = (chunk.frame[kwargs["column"]].iloc[index].tolist() if kind in _COLUMN_MAP | _NULL_MAP
                  else [None] * len(index))
        for row, value in zip(index, values):
            unexpected_by.setdefault(int(chunk.owner[row]), []).append(value)
        if kind in _PAIR_MAP:  # a broken pair rule: GX judges that partition alone
            dirty.update(unexpected_by)
    mostly = kwargs.get("mostly", 1.0)
    out: list[dict[str, Any] | None] = []
    for p in range(len(chunk.frames)):
        if kind in _UNIQUE:  # a key may repeat on other days: unique within the partition only
            keys = chunk.frames[p][list(kwargs.get("column_list") or [kwargs["column"]])]
            keep = ~(missing[chunk.owner == p]) & domain[chunk.owner == p]
            if keys[keep].duplicated(keep=False).any():
                dirty.add(p)
        if p in dirty:
            out.append(None)
            continue
        unexpected = unexpected_by.get(p, [])
        nonnull = None if missing_counts is None else int(elements[p] - missing_counts[p])
        if kind in _NULL_MAP:  # their own _validate: the share of all rows in the domain
            success = not elements[p] or (elements[p] - len(unexpected)) / elements[p] >= mostly
        else:  # ColumnMapExpectation._validate: vacuously true without rows, else the ``mostly`` share
            success = (not unexpected or not elements[p] or not nonnull
                       or _mostly_success(nonnull, len(unexpected), mostly))
        out.append(_format_map_output(
            result_format=parse_result_format(RESULT_FORMAT), success=success,
            element_count=int(elements[p]), nonnull_count=nonnull,
            unexpected_count=len(unexpected), unexpected_list=unexpected))
    return out


def _aggregate_metrics(kind: str, kwargs: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any] | None:
    """The metric an aggregate rule judges, computed on one partition (None: judge it alone)."""
    if kind == "expect_table_row_count_to_be_between":
        return {"table.row_count": len(frame)}
    column = frame[kwargs["column"]]
    values = column.dropna()
    if values.empty:
        return None
    if kind == "expect_column_min_to_be_between":
        return {"column.min": values.min()}
    if kind == "expect_column_max_to_be_between":
        return {"column.max": values.max()}
    if kind == "expect_column_proportion_of_non_null_values_to_be_between":
        return {"column.non_null_proportion": len(values) / len(column)}
    if set(values.unique()) != set(kwargs["value_set"]):  # distinct values: only the exact set is clean
        return None
    return {}


def validate_chunk(gate: "QualityGate", partitions: Sequence[tuple[pd.DataFrame, date, int]], *,
                   suite: str, dataset: str) -> list["QualityReport"]:
    """One report per ``(frame, dt, version)`` of one dataset, as :meth:`QualityGate.validate`
    gives, with one GX validation for every partition that shares the chunk's schema."""
    from contrail.quality import load_suite_document, prepare

    prepared = [prepare(df, suite) for df, _, _ in partitions]
    schemas = [schema(f) for f in prepared]
    common = max(set(schemas), key=schemas.count) if schemas else None
    together = [i for i, f in enumerate(prepared) if schemas[i] == common and len(f)]
    doc = load_suite_document(suite, suites_dir=gate.suites_dir)
    if len(together) < 2 or any(e["type"] not in KNOWN for e in doc["expectations"]):
        together = []
    reports: dict[int, QualityReport] = {}
    if together:
        try:
            reports = _validate_together(gate, [prepared[i] for i in together],
                                         [partitions[i] for i in together], doc, suite=suite, dataset=dataset)
            reports = {together[k]: r for k, r in reports.items()}
        except _Attribution as exc:
            log.warning("%s: validating %d partitions one by one: %s", dataset, len(together), exc)
            reports = {}
    for i, (df, dt, version) in enumerate(partitions):
        if i not in reports:
            reports[i] = gate.validate(df, suite=suite, dataset=dataset, dt=dt, version=version)
    return [reports[i] for i in range(len(partitions))]


def _validate_together(gate: "QualityGate", frames: list[pd.DataFrame],
                       partitions: list[tuple[pd.DataFrame, date, int]], doc: dict[str, Any], *,
                       suite: str, dataset: str) -> dict[int, "QualityReport"]:
    """Reports of the partitions the batched run can attribute exactly (the others are left out)."""
    from great_expectations.execution_engine.pandas_execution_engine import hash_pandas_dataframe
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.util import convert_to_json_serializable
    from great_expectations.validator.v1_validator import Validator

    from contrail.quality import _jsonable

    chunk = _Chunk(frames)
    definition = gate._validation(suite, dataset)
    dates = [dt_str(dt) for _, dt, _ in partitions]
    params = {**gate.references, "partition_dates": dates}
    batch = Validator(batch_definition=definition.batch_definition, batch_parameters={"dataframe": chunk.frame},
                      result_format={**RESULT_FORMAT, "result_format": "COMPLETE"}
                      ).validate_expectation_suite(definition.suite, params)
    batch_json = _jsonable(batch.to_json_dict())
    if len(batch_json["results"]) != len(doc["expectations"]):
        raise _Attribution("the suite and its result differ in length")

    dated = _partition_date_rules(doc)
    dirty: set[int] = set()
    per_rule: list[list[dict[str, Any] | None]] = []
    for evr in batch_json["results"]:
        config, kind = evr["expectation_config"], evr["expectation_config"]["type"]
        if evr["exception_info"].get("raised_exception"):
            raise _Attribution(f"{kind} raised on the batch")
        if kind in _SAME_FOR_ALL or (kind == "expect_column_values_to_be_in_type_list"
                                     and "observed_value" in (evr.get("result") or {})):
            # about columns and dtypes only, and every partition here has the same ones
            per_rule.append([{"success": evr["success"], "result": evr["result"]}] * len(frames))
        elif _rule_key(config) in dated:
            if kind != "expect_column_values_to_be_in_set" or config["kwargs"].get("row_condition"):
                raise _Attribution(f"{kind}: partition_dates in a rule this module does not split")
            column = config["kwargs"]["column"]
            rows = []
            for p, frame in enumerate(frames):
                values = frame[column].dropna()
                if (~values.isin([dates[p]])).any():
                    dirty.add(p)
                    rows.append(None)
                    continue
                rows.append({"element_count": len(frame), "missing": len(frame) - len(values)})
            per_rule.append([None if r is None else _clean_map(r["element_count"], r["missing"]) for r in rows])
        elif kind in _AGGREGATE:
            expectation = ExpectationConfiguration(**{k: config[k] for k in ("type", "kwargs", "meta")}
                                                   ).to_domain_obj()
            rows = []
            for p, frame in enumerate(frames):
                metrics = _aggregate_metrics(kind, config["kwargs"], frame)
                if metrics is None:
                    dirty.add(p)
                    rows.append(None)
                else:
                    rows.append(expectation._validate(metrics=metrics,
                                                      runtime_configuration={"result_format": RESULT_FORMAT}))
            per_rule.append(rows)
        else:
            results = _map_results(chunk, kind, config, evr, dirty)
            per_rule.append([None if r is None else {"success": r["success"], "result": r["result"]}
                             for r in results])

    from contrail.quality import report_from_result

    now = datetime.now(timezone.utc)
    reports: dict[int, QualityReport] = {}
    for p, (df, dt, version) in enumerate(partitions):
        if p in dirty:
            continue
        results = []
        for k, evr in enumerate(batch_json["results"]):
            verdict = _jsonable(convert_to_json_serializable(per_rule[k][p]))
            entry = {**evr, "success": verdict["success"], "result": verdict["result"]}
            for name in dated.get(_rule_key(evr["expectation_config"]), ()):
                entry["expectation_config"] = {**entry["expectation_config"], "kwargs": {
                    **entry["expectation_config"]["kwargs"], name: [dates[p]]}}
            results.append(entry)
        run_name = validation_run_name(dataset, dt, version)
        meta = {**batch_json["meta"], "validation_id": definition.id, "checkpoint_id": None,
                "run_id": {"run_name": run_name, "run_time": now.isoformat()}, "validation_time": now.isoformat(),
                "batch_markers": {"ge_load_time": now.strftime("%Y%m%dT%H%M%S.%fZ"),
                                  "pandas_data_fingerprint": hash_pandas_dataframe(frames[p])},
                "batch_parameters": {"dataframe": "<DATAFRAME>"}}
        successes = sum(bool(r["success"]) for r in results)
        result_json = {**batch_json, "success": successes == len(results), "results": results, "meta": meta,
                       "statistics": {"evaluated_expectations": len(results), "successful_expectations": successes,
                                      "unsuccessful_expectations": len(results) - successes,
                                      "success_percent": successes / len(results) * 100 if results else None}}
        gate._docs_pending.append((suite, run_name, now, result_json))
        reports[p] = gate._report(report_from_result(result_json, dataset=dataset, dt=dt, version=version,
                                                     suite=suite, row_count=len(df)))
    return reports


def _clean_map(element_count: int, missing: int) -> dict[str, Any]:
    from great_expectations.expectations.expectation import _format_map_output, parse_result_format

    out = _format_map_output(result_format=parse_result_format(RESULT_FORMAT), success=True,
                             element_count=element_count, nonnull_count=element_count - missing,
                             unexpected_count=0, unexpected_list=[])
    return {"success": out["success"], "result": out["result"]}


def store_results(store: Any, pending: Sequence[tuple[str, str, Any, dict[str, Any]]]) -> None:
    """Put batched partitions' results in GX's validation results store under the key a
    validation run of that partition would use, so Data Docs renders one page for each."""
    import json

    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    for suite, run_name, run_time, result_json in pending:
        batch_id = result_json["results"][0]["expectation_config"]["kwargs"].get("batch_id")
        key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite),
                                         run_id=RunIdentifier(run_name=run_name, run_time=run_time),
                                         batch_identifier=batch_id)
        # the JSON the store's own serialize step writes, without a round trip through GX objects
        store.store_backend.set(store.key_to_tuple(key), json.dumps(result_json, indent=2, sort_keys=True))


__all__ = ["KNOWN", "RESULT_FORMAT", "schema", "store_results", "validate_chunk"]
