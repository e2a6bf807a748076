"""The data contract of the daily drops, read from the committed ``config/data_contract.json``.

One file says, per dataset (``flights``, ``weather``), the columns in file order, the type
(``string`` | ``integer`` | ``double`` | ``timestamp``) and nullability of each, and the
tokens read as null; and it holds the reference lists (airline carrier codes, airport
codes) the raw suites check codes against. Landing's header and per-type value rules, the
GX frame reader's dtypes (:func:`pandas_dtypes`), the raw suites' reference parameters
(:func:`references`) and the Spark job's read schema (``contrail_spark.contract``, which
reads the copy of this file shipped inside the Spark artifact) are all derived from it, so
they cannot drift apart (``tests/unit/test_contract.py`` checks that they agree).

Pure: reading a file that ships with the package is the only I/O, done once and cached.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

CONTRACT_PATH = Path(__file__).resolve().parent / "config" / "data_contract.json"
CONTRACT_FORMAT = 1
TYPES: tuple[str, ...] = ("string", "integer", "double", "timestamp")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # "integer" is Spark's IntegerType

# How each type is written in a drop: the one form every reader parses to the same value.
_INTEGER = re.compile(r"-?[0-9]+")
_DOUBLE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool


@dataclass(frozen=True)
class DatasetContract:
    """One dataset's columns (in file order), null tokens and partition-date columns."""

    name: str
    columns: tuple[Column, ...]
    na_tokens: tuple[str, ...]
    partition_date_columns: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    def of_type(self, type_: str, *, nullable: bool | None = None) -> tuple[str, ...]:
        """Names of the columns of one type (optionally only the nullable / required ones)."""
        return tuple(c.name for c in self.columns
                     if c.type == type_ and (nullable is None or c.nullable == nullable))


@dataclass(frozen=True)
class Contract:
    datasets: Mapping[str, DatasetContract]
    references: Mapping[str, tuple[str, ...]]

    def dataset(self, name: str) -> DatasetContract:
        if name not in self.datasets:
            raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(self.datasets)}")
        return self.datasets[name]


def parse(doc: Mapping[str, Any]) -> Contract:
    """A contract from its JSON document, checked: known types, unique names, a column that
    appears in two datasets has the same type in both (the GX reader types by name), and the
    partition date columns are three required integers (landing compares them to the date)."""
    if doc.get("contract_format") != CONTRACT_FORMAT:
        raise ValueError(f"contract_format {doc.get('contract_format')!r}, expected {CONTRACT_FORMAT}")
    datasets: dict[str, DatasetContract] = {}
    seen_types: dict[str, str] = {}
    for name, spec in doc["datasets"].items():
        columns = tuple(Column(c["name"], c["type"], bool(c["nullable"])) for c in spec["columns"])
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: duplicate column names")
        for col in columns:
            if col.type not in TYPES:
                raise ValueError(f"{name}.{col.name}: type {col.type!r}, expected one of {TYPES}")
            if seen_types.setdefault(col.name, col.type) != col.type:
                raise ValueError(f"column {col.name!r} has type {col.type!r} in {name} but "
                                 f"{seen_types[col.name]!r} elsewhere")
        dates = tuple(spec["partition_date_columns"])
        by_name = {c.name: c for c in columns}
        if len(dates) != 3 or any(d not in by_name or by_name[d].type != "integer" or by_name[d].nullable
                                  for d in dates):
            raise ValueError(f"{name}: partition date columns {dates} must be three required integer columns")
        datasets[name] = DatasetContract(name=name, columns=columns, na_tokens=tuple(spec["na_tokens"]),
                                         partition_date_columns=dates)
    references = {k: tuple(v) for k, v in doc["references"].items() if isinstance(v, list)}
    return Contract(datasets=datasets, references=references)


@lru_cache(maxsize=1)
def load() -> Contract:
    """The committed contract (cached: it ships with the code and never changes at run time)."""
    return parse(json.loads(CONTRACT_PATH.read_text()))


def dataset(name: str) -> DatasetContract:
    return load().dataset(name)


def columns(name: str) -> tuple[str, ...]:
    """The header of a drop of ``name``, in file order."""
    return dataset(name).names


def references() -> dict[str, list[str]]:
    """The reference lists by suite parameter name (``airlines``, ``airports``)."""
    return {k: list(v) for k, v in load().references.items()}


def pandas_dtype(col: Column) -> str:
    """The dtype the GX frame reader gives a column: what the raw suites' type rules expect."""
    if col.type == "integer":
        return "Int64" if col.nullable else "int64"
    if col.type == "double":
        return "float64"
    return "object"  # string, and timestamp kept as its text


def pandas_dtypes() -> dict[str, str]:
    """Column name -> pandas dtype, over every dataset (a name has one type, see :func:`parse`)."""
    out: dict[str, str] = {}
    for ds in load().datasets.values():
        for col in ds.columns:
            # nullable wins: a name required in one dataset but nullable in another reads as Int64
            if out.get(col.name) != "Int64":
                out[col.name] = pandas_dtype(col)
    return out


@lru_cache(maxsize=4096)  # values repeat a lot within a day (a few dozen distinct instants)
def type_problem(type_: str, value: str) -> str | None:
    """Why a non-null text ``value`` is not a value of ``type_`` as the contract writes it, or None.

    ``integer``: ``-?[0-9]+`` in the 32-bit range (``517.0``, `` 5``, ``+5``, ``1e3`` are
    not). ``double``: ``-?[0-9]+(.[0-9]+)?([eE][-+]?[0-9]+)?`` and finite (no ``nan``,
    ``NaN``, ``inf``, ``1e999``). ``timestamp``: ``YYYY-MM-DDTHH:MM:SSZ`` naming a real
    instant. ``string``: anything (the whole-text rules live in landing).
    """
    if type_ == "integer":
        if not _INTEGER.fullmatch(value):
            return "is not an integer (-?[0-9]+)"
        return None if INT32_MIN <= int(value) <= INT32_MAX else "is outside the 32-bit integer range"
    if type_ == "double":
        if not _DOUBLE.fullmatch(value):
            return "is not a decimal number"
        return None if math.isfinite(float(value)) else "is not finite"
    if type_ == "timestamp":
        if (m := _TIMESTAMP.fullmatch(value)) is None:
            return "is not YYYY-MM-DDTHH:MM:SSZ"
        try:
            datetime(*map(int, m.groups()))
        except ValueError:
            return "is not a real instant"
    return None


# A subset of each type's written form: integers of up to 9 digits, doubles without exponent
# (at most 15 integer digits, so finite), timestamps by shape only.
_FAST_FIELD = {"integer": r"-?[0-9]{1,9}", "double": r"-?[0-9]{1,15}(?:\.[0-9]{1,17})?",
               "timestamp": r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", "string": r"[^,]+"}


@lru_cache(maxsize=8)
def fast_row_pattern(name: str) -> re.Pattern[str]:
    """A regex over one unquoted CSV line of ``name`` matching only rows whose every value is
    valid for its column (required columns not null), timestamps checked by shape only.

    It accepts a subset of the good rows, so a line it does not match is not bad: the caller
    then checks value by value with :func:`type_problem`.
    """
    spec = dataset(name)
    tokens = "|".join(re.escape(t) for t in spec.na_tokens if t)
    not_null = f"(?!(?:{tokens})(?:,|$))" if tokens else ""
    nulls = "|".join(map(re.escape, spec.na_tokens))
    fields = [f"(?:{_FAST_FIELD[c.type]}|{nulls})" if c.nullable else f"{not_null}(?:{_FAST_FIELD[c.type]})"
              for c in spec.columns]
    return re.compile(",".join(fields))
