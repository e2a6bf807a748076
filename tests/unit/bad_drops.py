"""Tiny drops for landing tests: a good export builder and the corpus of bad drops.

Plain functions, no pytest: an integration test can drop the same corpus into the local
stack and run the landing DAG over it. Every bad drop also holds one good file, so a test
can show that nothing of a partly good drop reaches ``landing/``.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import date, timedelta

from contrail import catalog, lake, nycflights

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
    header = ",".join(columns or nycflights.COLUMNS[dataset])
    lines = [_ROW_TEMPLATES[dataset].format(y=dt.year, m=dt.month, d=dt.day, n=start + i)
             for i in range(rows)]
    return "\n".join([header, *lines]) + "\n"


def gz(data: bytes | str) -> bytes:
    return gzip.compress(data.encode() if isinstance(data, str) else data, mtime=0)


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
    columns = nycflights.COLUMNS[dataset]
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
        ("header_only", "header_only.csv.gz", gz(",".join(columns) + "\n"), "no_rows"),
        ("wrong_date", f"{dataset}_{(dt + timedelta(days=1)).isoformat()}.csv.gz",
         good_body(dataset, dt + timedelta(days=1), start=100), "wrong_date"),
        ("duplicate_file", f"{dataset}_{dt.isoformat()}_copy.csv.gz",
         good_body(dataset, dt), "duplicate_file"),
        ("dotdot_key", f"../{dt.isoformat()}x/escape.csv.gz", body, "unsafe_key"),
        ("odd_characters", f"{dataset} export (1).csv.gz", body, "unsafe_key"),
        ("non_ascii_key", f"{dataset}_\u00e9t\u00e9.csv.gz", body, "unsafe_key"),
        ("not_csv_gz", f"{dataset}_{dt.isoformat()}.csv", csv_text(dataset, dt).encode(), "not_csv_gz"),
    ]
    return [BadDrop(name=name, objects={**good, prefix + rel: data}, bad_key=prefix + rel, reason=reason)
            for name, rel, data, reason in cases]
