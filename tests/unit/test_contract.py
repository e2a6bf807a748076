"""The data contract, and the places built from it agree with it: landing's header, the GX
reader's dtypes, the raw suites (columns, types, required columns, reference parameters), the
Spark job's read schema and the copy of the contract inside the Spark artifact."""

from __future__ import annotations

import ast
import io
import json
import zipfile
from datetime import date
from pathlib import Path

import pytest

from bad_drops import csv_text, good_key, gz
from contrail import contract, landing, quality
from contrail.settings import REPO_ROOT

DT = date(2013, 1, 1)
RAW_SUITES = {"flights": "flights_raw", "weather": "weather_raw"}
# how GX's type_list names the dtype contract.pandas_dtype gives
GX_TYPE_NAMES = {"object": "str", "Int64": "Int64Dtype", "int64": "int64", "float64": "float64"}


def _expectations(dataset: str, kind: str) -> list[dict]:
    doc = quality.load_suite_document(RAW_SUITES[dataset])
    return [e for e in doc["expectations"] if e["type"] == kind]


@pytest.mark.parametrize("dataset", sorted(RAW_SUITES))
def test_landing_accepts_exactly_the_contract_header(dataset: str) -> None:
    columns = contract.columns(dataset)
    inspection = landing.inspect_drop(good_key(dataset, DT), gz(csv_text(dataset, DT, columns=columns)),
                                      dataset=dataset, dt=DT)
    assert inspection.header_fingerprint == landing.header_fingerprint(columns)
    with pytest.raises(landing.BadDropError, match="wrong_header"):
        landing.inspect_drop(good_key(dataset, DT), gz(csv_text(dataset, DT, columns=columns[::-1])),
                             dataset=dataset, dt=DT)


@pytest.mark.parametrize("dataset", sorted(RAW_SUITES))
def test_raw_suite_columns_types_and_required_columns_are_the_contract(dataset: str) -> None:
    spec = contract.dataset(dataset)
    [columns] = _expectations(dataset, "expect_table_columns_to_match_set")
    assert set(columns["kwargs"]["column_set"]) == set(spec.names)
    for rule in _expectations(dataset, "expect_column_values_to_be_in_type_list"):
        col = spec.column(rule["kwargs"]["column"])
        assert GX_TYPE_NAMES[contract.pandas_dtype(col)] in rule["kwargs"]["type_list"], col
    not_null = _expectations(dataset, "expect_column_values_to_not_be_null")
    strict_not_null = {e["kwargs"]["column"] for e in not_null
                       if "mostly" not in e["kwargs"] and "row_condition" not in e["kwargs"]}
    assert strict_not_null == {c.name for c in spec.columns if not c.nullable}


def test_suite_reference_parameters_come_from_the_contract() -> None:
    refs = quality.default_references()
    assert refs == contract.references() and set(refs) == {"airlines", "airports"}
    used = set().union(*(quality.suite_parameters(quality.load_suite_document(suite))
                         for suite in RAW_SUITES.values()))
    assert used - {"partition_dates"} <= set(refs)
    assert "UA" in refs["airlines"] and "IAH" in refs["airports"]
    assert refs["airports"] == sorted(refs["airports"])


def test_committed_reference_lists_are_the_sample_packages() -> None:
    from contrail import nycflights

    assert contract.references() == nycflights.references()


def test_gx_reader_dtypes_are_the_contracts() -> None:
    for dataset in RAW_SUITES:
        frame = quality.read_landed_csv(gz(csv_text(dataset, DT)))
        assert {c: str(t) for c, t in frame.dtypes.items()} == {
            c.name: contract.pandas_dtype(c) for c in contract.dataset(dataset).columns}


def test_spark_schema_is_the_contracts() -> None:
    pytest.importorskip("pyspark")
    from contrail_spark import transforms

    kinds = {"integer": "IntegerType", "double": "DoubleType", "string": "StringType",
             "timestamp": "StringType"}
    for dataset, schema in (("flights", transforms.FLIGHTS_SCHEMA), ("weather", transforms.WEATHER_SCHEMA)):
        assert [(f.name, type(f.dataType).__name__) for f in schema.fields] == [
            (c.name, kinds[c.type]) for c in contract.dataset(dataset).columns]


def test_the_spark_artifact_ships_the_committed_contract() -> None:
    from contrail_spark import package

    with zipfile.ZipFile(io.BytesIO(package.artifact_bytes())) as archive:
        shipped = archive.read("contrail_spark/data_contract.json")
        names = archive.namelist()
    assert shipped == contract.CONTRACT_PATH.read_bytes()
    assert names == sorted(names) and "contrail_spark/contract.py" in names


def test_contract_parse_refuses_inconsistent_documents() -> None:
    doc = json.loads(contract.CONTRACT_PATH.read_text())
    assert contract.parse(doc) == contract.load()
    broken = json.loads(json.dumps(doc))
    broken["datasets"]["weather"]["columns"][0]["type"] = "integer"  # origin: string in flights
    with pytest.raises(ValueError, match="origin"):
        contract.parse(broken)
    broken = json.loads(json.dumps(doc))
    broken["datasets"]["flights"]["columns"][0]["type"] = "date"
    with pytest.raises(ValueError, match="type 'date'"):
        contract.parse(broken)


@pytest.mark.parametrize("type_, value, problem", [
    ("integer", "517", None), ("integer", "-2147483648", None), ("integer", "007", None),
    ("integer", "517.0", "not an integer"), ("integer", " 5", "not an integer"),
    ("integer", "+5", "not an integer"), ("integer", "2147483648", "32-bit"),
    ("double", "1.5e3", None), ("double", "-4", None), ("double", "nan", "not a decimal"),
    ("double", ".5", "not a decimal"), ("double", "1e999", "not finite"),
    ("timestamp", "2013-01-01T05:00:00Z", None), ("timestamp", "2013-01-01T05:00:00+00:00", "YYYY"),
    ("timestamp", "2013-02-29T05:00:00Z", "real instant"), ("string", " any text ", None),
])
def test_type_problem(type_: str, value: str, problem: str | None) -> None:
    got = contract.type_problem(type_, value)
    assert got is None if problem is None else problem in (got or "")


def test_production_modules_take_schema_and_references_from_the_contract() -> None:
    """The sample-data package and the simulator stay data sources for demos, not schema sources."""
    paths = [REPO_ROOT / "plugins/contrail" / name for name in ("landing.py", "quality.py", "contract.py",
                                                                "sensors.py")]
    paths += sorted((REPO_ROOT / "spark_jobs").rglob("*.py"))
    for path in paths:
        imported = set()
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported |= {f"{node.module}.{a.name}" for a in node.names} | {str(node.module)}
        assert not {m for m in imported if "nycflights" in m or "simulate" in m}, path


def test_fast_row_pattern_only_accepts_rows_the_value_rules_accept() -> None:
    pattern = contract.fast_row_pattern("flights")
    row = csv_text("flights", DT, rows=1).splitlines()[1].split(",")
    names = contract.columns("flights")

    def line(**values: str) -> str:
        return ",".join(values.get(n, v) for n, v in zip(names, row))

    assert pattern.fullmatch(line())
    assert pattern.fullmatch(line(dep_time="NA", tailnum=""))  # nullable columns take the null tokens
    for bad in ({"flight": "NA"}, {"carrier": ""}, {"carrier": "NA"}, {"dep_time": "517.0"},
                {"dep_time": " 517"}, {"time_hour": "2013-01-01 10:00:00Z"}):
        assert not pattern.fullmatch(line(**bad)), bad
    # conservative: valid but unusual forms fall through to the per-value rules, which accept them
    assert not pattern.fullmatch(line(dep_time="2147483647"))
    assert contract.type_problem("integer", "2147483647") is None


def test_the_spark_job_reads_the_artifacts_copy(tmp_path: Path) -> None:
    """Run from the zip (as spark-submit --py-files does), the loader finds the shipped copy."""
    import subprocess
    import sys

    from contrail_spark import package

    artifact = package.build_artifact(tmp_path)
    code = ("import json, pkgutil, contrail_spark.contract as c; "
            "assert c.__file__.startswith(%r); "
            "print(json.dumps(c.load() == json.loads(pkgutil.get_data('contrail_spark', c.CONTRACT_NAME))))"
            % str(artifact))
    # -S -I: no site-packages, so neither the editable contrail_spark nor contrail is importable
    script = f"import sys; sys.path.insert(0, {str(artifact)!r}); " + code
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "true"
