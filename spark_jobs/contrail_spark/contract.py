"""The data contract as the Spark job reads it: the read schema of each landed dataset.

The contract is ``plugins/contrail/config/data_contract.json`` (package data of ``contrail``);
the Spark job does not ship ``plugins/``, so :mod:`contrail_spark.package` copies the file
into the artifact as ``contrail_spark/data_contract.json``. Run without an artifact (tests,
a source checkout) the file is read from the ``contrail`` package. Types map to Spark as
``integer`` -> ``IntegerType``, ``double`` -> ``DoubleType``, ``string`` -> ``StringType``;
a ``timestamp`` is read as its text (``StringType``) and parsed by the transform that needs
the instant, as the GX reader keeps it text too.
"""

from __future__ import annotations

import json
import pkgutil
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql.types import StructType

CONTRACT_NAME = "data_contract.json"
PLUGIN_RESOURCE = ("contrail", f"config/{CONTRACT_NAME}")  # where the committed file ships
# contract type -> pyspark.sql.types class name (imported lazily: the packager, which runs in
# Airflow, imports this module without needing pyspark)
_SPARK_TYPES: dict[str, str] = {
    "integer": "IntegerType", "double": "DoubleType", "string": "StringType", "timestamp": "StringType",
}


def plugin_contract_bytes() -> bytes:
    """The committed contract, from the ``contrail`` package (what the artifact must carry)."""
    data = pkgutil.get_data(*PLUGIN_RESOURCE)
    if data is None:
        raise FileNotFoundError(f"{PLUGIN_RESOURCE[1]} not found in the {PLUGIN_RESOURCE[0]} package")
    return data


@lru_cache(maxsize=1)
def load() -> dict[str, Any]:
    """The contract document: the artifact's copy if there is one, else the plugin package's."""
    try:
        data = pkgutil.get_data(__package__, CONTRACT_NAME)
    except OSError:  # no artifact: a source checkout or an install, where contrail has the file
        data = None
    return json.loads(data if data is not None else plugin_contract_bytes())


def spark_schema(dataset: str) -> "StructType":
    """The read schema of one landed dataset, columns in file order.

    Every field is nullable: Spark's file sources read with a nullable schema whatever it
    says, and a required column's nulls are landing's to reject (``missing_value``), so
    the contract's nullability is not restated here.
    """
    from pyspark.sql import types

    columns = load()["datasets"][dataset]["columns"]
    return types.StructType([types.StructField(c["name"], getattr(types, _SPARK_TYPES[c["type"]])())
                             for c in columns])
