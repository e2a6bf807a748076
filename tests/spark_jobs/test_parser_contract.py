"""One parser contract: every parser case through landing, the GX frame reader and the Spark reader.

For each case of the bad-drop corpus's parser cases (``bad_drops.parser_cases``): where
landing accepts the file, the frame the quality gate validates (``quality.read_landed_csv``)
and the frame the feature job computes from (``lake_io``'s CSV reader with the job's
schema) hold the same rows, the same values of the same Python types and the same nulls,
with the dtypes and Spark types the data contract names. Where landing rejects it, the rule
id is the expected one. One Spark read per dataset covers every accepted case.
"""

from __future__ import annotations

import math
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the shared bad-drop corpus

from bad_drops import ParserCase, good_key, parser_cases  # noqa: E402
from contrail import contract, landing  # noqa: E402
from contrail.quality import read_landed_csv  # noqa: E402

pytestmark = pytest.mark.spark

DT = date(2013, 1, 1)
DATASETS = ("flights", "weather")
CASES = [(ds, case) for ds in DATASETS for case in parser_cases(ds, DT)]
SPARK_TYPES = {"integer": "IntegerType()", "double": "DoubleType()", "string": "StringType()",
               "timestamp": "StringType()"}


def _verdict(dataset: str, case: ParserCase) -> tuple[str | None, int]:
    """(landing's rule id or None, rows) for one case."""
    try:
        inspection = landing.inspect_drop(good_key(dataset, DT), case.body, dataset=dataset, dt=DT)
    except landing.BadDropError as exc:
        return exc.reason, 0
    return None, inspection.rows


def _cell(value: Any) -> Any:
    """A pandas cell as a plain Python value; every null as None."""
    if value is pd.NA or value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


@pytest.fixture(scope="module")
def spark_rows(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[tuple]]:
    """Rows Spark reads from every accepted case, by (dataset, case name), in file order."""
    from pyspark.sql import functions as F

    from contrail_spark import transforms
    from contrail_spark.lake_io import _read_landed_csv

    schemas = {"flights": transforms.FLIGHTS_SCHEMA, "weather": transforms.WEATHER_SCHEMA}
    out: dict[tuple[str, str], list[tuple]] = {}
    for dataset in DATASETS:
        folder = tmp_path_factory.mktemp(dataset)
        for ds, case in CASES:
            if ds == dataset and _verdict(ds, case)[0] is None:
                (folder / f"{case.name}.csv.gz").write_bytes(case.body)  # the suffix names the codec
        frame = _read_landed_csv(spark, [str(folder)], schemas[dataset])
        assert [(f.name, repr(f.dataType)) for f in frame.schema.fields] == [
            (c.name, SPARK_TYPES[c.type]) for c in contract.dataset(dataset).columns]
        for row in frame.withColumn("_file", F.input_file_name()).collect():
            name = row["_file"].rsplit("/", 1)[-1].removesuffix(".csv.gz")
            out.setdefault((dataset, name), []).append(tuple(row)[:-1])
    return out


@pytest.mark.parametrize("dataset, case", CASES, ids=[f"{ds}-{c.name}" for ds, c in CASES])
def test_three_readers_agree(dataset: str, case: ParserCase, spark_rows: dict) -> None:
    reason, rows = _verdict(dataset, case)
    if case.reason is not None:
        assert reason == case.reason
        return
    assert reason is None, f"landing rejects a case every reader reads the same: {reason}"

    spec = contract.dataset(dataset)
    gx = read_landed_csv(case.body)
    assert list(gx.columns) == list(spec.names)
    assert {c: str(t) for c, t in gx.dtypes.items()} == {
        c.name: contract.pandas_dtype(c) for c in spec.columns}
    gx_rows = [tuple(_cell(v) for v in row) for row in gx.itertuples(index=False)]
    spark = spark_rows[(dataset, case.name)]

    assert len(gx_rows) == len(spark) == rows
    for line, (ours, theirs) in enumerate(zip(gx_rows, spark), start=2):
        assert ours == theirs, f"line {line}"
        assert [type(v) for v in ours] == [type(v) for v in theirs], f"line {line}"
