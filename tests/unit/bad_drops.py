"""Tiny drops for landing tests: a good export builder and the corpus of bad drops.

Plain functions, no pytest: an integration test can drop the same corpus into the local
stack and run the landing DAG over it. Every bad drop but the per-drop ``no_rows`` one also
holds one good file, so a test can show that nothing of a partly good drop reaches
``landing/``.

:func:`parser_cases` is the parser-contract corpus: one file per way of writing a value
that landing, the GX frame reader and the Spark reader could read differently, with the
rule landing rejects it by, or None where all three read it the same (and it lands).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import date, timedelta

from contrail import catalog, contract

# One plausible row per dataset; {y},{m},{d} are the partition date, {n} varies content.
_ROW_TEMPLATES = {
    "flights": "{y},{m},{d},517,515,2,830,819,11,UA,{n},N14228,EWR,IAH,227,1400,5,15,"
               "{y}-{m:02d}-{d:02d}T10:00:00Z",
    "weather": "EWR,{y},{m},{d},{n},39.02,26.06,59.37,270,10.35702,NA,0.0,1012.0,10.0,"
               "{y}-{m:02d}-{d:02d}T06:00:00Z",
}


def csv_text(dataset: str, dt: date, rows: int = 3, *, start: int = 1,
             columns: tuple[str, ...] | None = None) -> str:
    """A small export of ``dataset`` for ``dt``; ``start`` shifts a numeric field to vary content."""
    header = ",".join(columns or contract.columns(dataset))
    lines = [_ROW_TEMPLATES[dataset].format(y=dt.year, m=dt.month, d=dt.day, n=start + i)
             for i in range(rows)]
    return "\n".join([header, *lines]) + "\n"


def gz(data: bytes | str, *, mtime: int = 0, level: int = 9) -> bytes:
    return gzip.compress(data.encode() if isinstance(data, str) else data, compresslevel=level, mtime=mtime)


def with_values(dataset: str, dt: date, values: dict[tuple[int, str], str], rows: int = 3, *,
                start: int = 100) -> str:
    """:func:`csv_text` with ``values[(row, column)]`` written raw into data row ``row`` (0-based)."""
    columns = contract.columns(dataset)
    header, *lines = csv_text(dataset, dt, rows, start=start).splitlines()
    cells = [line.split(",") for line in lines]
    for (row, column), value in values.items():
        cells[row][columns.index(column)] = value
    return "\n".join([header, *(",".join(c) for c in cells)]) + "\n"


@dataclass(frozen=True)
class ParserCase:
    """One way of writing a drop: ``body`` (gzip) and the landing rule rejecting it (None: it lands)."""

    name: str
    body: bytes
    reason: str | None


def _columns(dataset: str) -> dict[str, str | None]:
    """A column of each role the parser cases need, from the contract (None: the dataset has none)."""
    spec = contract.dataset(dataset)

    def first(names: tuple[str, ...]) -> str | None:
        return next((n for n in names if n not in spec.partition_date_columns), None)

    return {"int": first(spec.of_type("integer", nullable=True)),
            "required_int": first(spec.of_type("integer", nullable=False)),
            "double": first(spec.of_type("double")),
            "text": first(spec.of_type("string", nullable=False)),
            "nullable_text": first(spec.of_type("string", nullable=True)),
            "timestamp": first(spec.of_type("timestamp"))}


def parser_cases(dataset: str, dt: date) -> list[ParserCase]:
    """Every parser-contract case that applies to ``dataset`` (doubles only where it has some)."""
    col = _columns(dataset)
    text = csv_text(dataset, dt, start=100)
    year, month, day = contract.dataset(dataset).partition_date_columns
    edits: list[tuple[str, str, dict[tuple[int, str], str], str | None]] = [
        # role, name, {(row, role): raw value}, rule (None: read the same by all three)
        ("text", "multiline_field", {(0, "text"): '"E\nWR"'}, "multiline_field"),
        ("text", "doubled_quote", {(0, "text"): '"E""WR"'}, "quoted_field"),
        ("text", "quoted_empty", {(0, "text"): '""'}, "quoted_field"),
        ("int", "quoted_number", {(0, "int"): '"517"'}, "quoted_field"),
        ("text", "nul_in_text", {(0, "text"): "E\x00WR"}, "control_character"),
        ("text", "tab_in_text", {(0, "text"): "E\tWR"}, "control_character"),
        ("required_int", "required_na", {(0, "required_int"): "NA"}, "missing_value"),
        ("required_int", "required_empty", {(1, "required_int"): ""}, "missing_value"),
        ("int", "int_as_float", {(0, "int"): "517.0"}, "bad_integer"),
        ("int", "int_padded", {(0, "int"): " 517"}, "bad_integer"),
        ("int", "int_plus_sign", {(0, "int"): "+517"}, "bad_integer"),
        ("int", "int_exponent", {(0, "int"): "5e2"}, "bad_integer"),
        ("int", "int_overflow", {(0, "int"): "3000000000"}, "bad_integer"),
        ("double", "double_nan", {(0, "double"): "nan"}, "bad_double"),
        ("double", "double_NaN", {(0, "double"): "NaN"}, "bad_double"),
        ("double", "double_inf", {(0, "double"): "Inf"}, "bad_double"),
        ("double", "double_overflow", {(0, "double"): "1e999"}, "bad_double"),
        ("double", "double_padded", {(0, "double"): " 39.02"}, "bad_double"),
        ("timestamp", "timestamp_space", {(0, "timestamp"): "2013-01-01 10:00:00Z"}, "bad_timestamp"),
        ("timestamp", "timestamp_impossible", {(0, "timestamp"): "2013-02-30T10:00:00Z"}, "bad_timestamp"),
        # accepted: every reader reads these the same
        ("int", "nulls_na_and_empty", {(0, "int"): "NA", (1, "int"): ""}, None),
        ("nullable_text", "text_na_and_empty", {(0, "nullable_text"): "NA", (1, "nullable_text"): ""}, None),
        ("int", "negative_and_extreme_ints", {(0, "int"): "-5", (1, "int"): "2147483647",
                                              (2, "int"): "-2147483648"}, None),
        ("double", "whole_doubles", {(0, "double"): "39", (1, "double"): "-4", (2, "double"): "0"}, None),
        ("double", "exponent_double", {(0, "double"): "3.902e1", (1, "double"): "1E-3"}, None),
        ("double", "long_mantissa", {(0, "double"): "0.1234567890123456789",
                                     (1, "double"): "1012.3000000000001"}, None),
        ("text", "padded_text", {(0, "text"): " EWR "}, None),
        ("text", "backslash_text", {(0, "text"): "E\\WR"}, None),
        ("text", "non_ascii_text", {(0, "text"): "Z\u00fcrich"}, None),
        ("text", "leading_zero_dates", {(0, "text"): "EWR", **{(r, c): f"{v:02d}" for r in range(3)
                                        for c, v in ((month, dt.month), (day, dt.day))}}, None),
    ]
    cases = [ParserCase("plain", gz(text), None),
             ParserCase("crlf_line_ends", gz(text.replace("\n", "\r\n")), None),
             ParserCase("cr_line_ends", gz(text.replace("\n", "\r")), None),
             ParserCase("utf8_bom", gz("\ufeff" + text), None),
             ParserCase("no_final_newline", gz(text.rstrip("\n")), None),
             ParserCase("recompressed", gz(text, mtime=1_700_000_000, level=1), None),
             ParserCase("gzip_zero_padding", gz(text) + bytes(16), "gzip_trailing_data"),
             ParserCase("gzip_two_members", gz(text) + gz(text.split("\n", 1)[1]), "gzip_trailing_data"),
             ParserCase("gzip_trailing_garbage", gz(text) + b"garbage", "gzip_trailing_data")]
    for role, name, values, reason in edits:
        if col[role] is None:
            continue
        # role names stand for this dataset's column of that role; raw column names pass through
        named = {(row, col.get(c) or c): v for (row, c), v in values.items()}
        cases.append(ParserCase(name, gz(with_values(dataset, dt, named)), reason))
    return cases


def good_body(dataset: str, dt: date, rows: int = 3, *, start: int = 1) -> bytes:
    return gz(csv_text(dataset, dt, rows, start=start))


def good_key(dataset: str, dt: date, name: str | None = None) -> str:
    return catalog.incoming_prefix(dataset, dt) + (name or f"{dataset}_{dt.isoformat()}.csv.gz")


@dataclass(frozen=True)
class BadDrop:
    """One bad drop: ``objects`` to put under incoming/, ``bad_key`` expected to fail with ``reason``."""

    name: str
    objects: dict[str, bytes]
    bad_key: str
    reason: str


def corpus(dataset: str, dt: date) -> list[BadDrop]:
    """Every rule of the landing zone broken once, each next to a good file of the same drop."""
    prefix = catalog.incoming_prefix(dataset, dt)
    good = {good_key(dataset, dt): good_body(dataset, dt)}
    body = good_body(dataset, dt, start=100)
    columns = contract.columns(dataset)
    crc_broken = body[:-8] + bytes(4) + body[-4:]
    latin1 = csv_text(dataset, dt, start=100).replace("EWR", "Z\u00fcrich").encode("latin-1")
    ragged = csv_text(dataset, dt, start=100).replace("\n", ",extra\n", 2).replace(
        ",".join(columns) + ",extra", ",".join(columns))
    cases = [
        ("empty_file", "empty.csv.gz", b"", "empty_file"),
        ("empty_gzip", "empty_gzip.csv.gz", gz(b""), "empty_file"),
        ("plain_csv_named_gz", "plain.csv.gz", csv_text(dataset, dt).encode(), "not_gzip"),
        ("truncated_gzip", "truncated.csv.gz", body[: len(body) // 2], "truncated_gzip"),
        ("crc_mismatch", "crc.csv.gz", crc_broken, "corrupt_gzip"),
        ("wrong_header", "reordered.csv.gz",
         gz(csv_text(dataset, dt, columns=(columns[1], columns[0], *columns[2:]))), "wrong_header"),
        ("header_case", "upper.csv.gz",
         gz(csv_text(dataset, dt).replace(columns[0], columns[0].upper(), 1)), "wrong_header"),
        ("not_utf8", "latin1.csv.gz", gz(latin1), "not_utf8"),
        ("ragged_row", "ragged.csv.gz", gz(ragged), "ragged_row"),
        ("wrong_date", f"{dataset}_{(dt + timedelta(days=1)).isoformat()}.csv.gz",
         good_body(dataset, dt + timedelta(days=1), start=100), "wrong_date"),
        ("duplicate_file", f"{dataset}_{dt.isoformat()}_copy.csv.gz",
         good_body(dataset, dt), "duplicate_file"),
        ("dotdot_key", f"../{dt.isoformat()}x/escape.csv.gz", body, "unsafe_key"),
        ("odd_characters", f"{dataset} export (1).csv.gz", body, "unsafe_key"),
        ("non_ascii_key", f"{dataset}_\u00e9t\u00e9.csv.gz", body, "unsafe_key"),
        ("not_csv_gz", f"{dataset}_{dt.isoformat()}.csv", csv_text(dataset, dt).encode(), "not_csv_gz"),
        ("upper_case_suffix", f"{dataset}_{dt.isoformat()}.CSV.GZ", body, "not_csv_gz"),
        ("recompressed_duplicate", f"{dataset}_{dt.isoformat()}_again.csv.gz",
         gz(csv_text(dataset, dt), mtime=1_700_000_000, level=1), "duplicate_file"),
        # fits S3 as an incoming key (<= 1,024 bytes), not once moved below landing/…/v=NNNN/
        ("key_too_long", "a" * (1024 - len(prefix) - len(".csv.gz") - 2) + ".csv.gz", body, "key_too_long"),
        *((f"parser_{c.name}", f"parser_{c.name}.csv.gz", c.body, c.reason)
          for c in parser_cases(dataset, dt) if c.reason is not None),
    ]
    header_only = prefix + "header_only.csv.gz"
    return [BadDrop(name=name, objects={**good, prefix + rel: data}, bad_key=prefix + rel, reason=reason)
            for name, rel, data, reason in cases] + [
        # no_rows is judged per drop: a header-only part fails only when no part has rows
        BadDrop(name="header_only_drop", objects={header_only: gz(",".join(columns) + "\n")},
                bad_key=header_only, reason="no_rows")]
