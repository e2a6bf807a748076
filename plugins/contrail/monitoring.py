"""Monitoring: how the serving model does once the outcomes land, and whether it degraded.

Consumes prediction rows (batch ``predictions/<model>/dt=…`` or stream, the columns
``flight_id``, ``dt``, ``probability``, ``label``, ``model_version``), the landed flights of
the same days (``arr_delay`` is known once the day has flown) and the training window's
feature profile (:func:`feature_profile`, logged with the training run). Produces one row
per model version, source and day (:data:`DAILY_COLUMNS`) and, by :func:`degradation`, the
reason to retrain — or None. Everything here is pure.

The outcome of a flight is the training label itself: arrived ≥ 15 minutes late
(:data:`DELAY_MINUTES`); cancelled and diverted flights have none and are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from contrail import training

DELAY_MINUTES = 15
# The features whose drift is watched: weather, schedule and the trailing rates the model
# leans on most (permutation importance of the HGB champion).
MONITORED_FEATURES: tuple[str, ...] = (
    "sched_dep_hour", "distance", "temp", "precip", "visib", "wind_speed",
    "carrier_ontime_7d", "origin_ontime_7d", "route_ontime_28d",
)
PROFILE_BINS = 10
DAILY_COLUMNS: tuple[str, ...] = (
    "model_version", "source", "dt", "rows", "roc_auc", "brier", "ece", "positive_rate",
    "predicted_positive_rate", "mean_probability", "psi_max", "psi_feature",
)
_EPS = 1e-4  # floor on a bin's share, so an empty bin does not make PSI infinite


def outcomes(landed_flights: pd.DataFrame) -> pd.DataFrame:
    """``flight_id``, ``dt`` and ``outcome`` (1 = arrived ≥ 15 min late) of the arrived flights
    of a landed flights export; ``flight_id`` as the feature job builds it (pure)."""
    f = landed_flights
    arrived = f["dep_time"].notna() & f["arr_delay"].notna()
    f = f.loc[arrived]
    ids = (f["carrier"].astype(str) + "-" + f["flight"].astype("int64").astype(str) + "-" + f["origin"].astype(str)
           + "-" + f["year"].astype("int64").map("{:04d}".format) + f["month"].astype("int64").map("{:02d}".format)
           + f["day"].astype("int64").map("{:02d}".format) + f["hour"].astype("int64").map("{:02d}".format)
           + f["minute"].astype("int64").map("{:02d}".format))
    dt = (f["year"].astype("int64").map("{:04d}".format) + "-" + f["month"].astype("int64").map("{:02d}".format)
          + "-" + f["day"].astype("int64").map("{:02d}".format))
    return pd.DataFrame({"flight_id": ids.to_numpy(), "dt": dt.to_numpy(),
                         "outcome": (f["arr_delay"].astype("float64") >= DELAY_MINUTES).astype(np.int8).to_numpy()})


# --------------------------------------------------------------------------- drift

def feature_profile(train: pd.DataFrame, features: Sequence[str] = MONITORED_FEATURES,
                    bins: int = PROFILE_BINS) -> dict[str, Any]:
    """Quantile bin edges of each feature over the training window and the share of rows in
    each bin (a missing value is a bin of its own): what :func:`psi` compares a day against."""
    out: dict[str, Any] = {"bins": bins, "features": {}}
    for name in features:
        values = pd.to_numeric(train[name], errors="coerce").astype("float64")
        present = values.dropna().to_numpy()
        if len(present) == 0:
            continue
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1))[1:-1])
        out["features"][name] = {"edges": edges.tolist(), "shares": _shares(values, edges).tolist()}
    return out


def _shares(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    v = values.to_numpy(dtype=np.float64)
    missing = np.isnan(v)
    counts = np.bincount(np.searchsorted(edges, v[~missing], side="right"), minlength=len(edges) + 1)
    counts = np.append(counts, missing.sum()).astype(np.float64)
    return counts / max(len(v), 1)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index Σ (a − e) · ln(a / e) over bins (pure). Rule of thumb:
    < 0.1 stable, 0.1–0.2 moderate shift, > 0.2 a shift worth acting on."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _EPS)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(profile: Mapping[str, Any], day: pd.DataFrame) -> dict[str, float]:
    """PSI of each profiled feature of ``day`` against the training window."""
    out = {}
    for name, ref in profile.get("features", {}).items():
        if name in day:
            values = pd.to_numeric(day[name], errors="coerce").astype("float64")
            out[name] = psi(ref["shares"], _shares(values, np.asarray(ref["edges"], dtype=np.float64)))
    return out


# --------------------------------------------------------------------------- daily metrics

def daily_metrics(predictions: pd.DataFrame, outcome: pd.DataFrame, *, source: str,
                  features: pd.DataFrame | None = None,
                  profile: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Per model version and day: ROC AUC, Brier, calibration error (10-bin ECE), observed and
    predicted positive rates on the flights that have an outcome; PSI of the day's features
    (``features``, the published partition) against ``profile`` (pure)."""
    joined = predictions.loc[:, ["flight_id", "dt", "probability", "label", "model_version"]].merge(
        outcome.loc[:, ["flight_id", "outcome"]], on="flight_id", how="inner")
    drift = {}
    if features is not None and profile is not None:
        for dt, rows in features.groupby("dt"):
            scores = feature_psi(profile, rows)
            drift[dt] = max(scores.items(), key=lambda kv: kv[1]) if scores else (None, math.nan)
    rows = []
    for (version, dt), day in joined.groupby(["model_version", "dt"], sort=True):
        y = day["outcome"].to_numpy(dtype=np.int64)
        p = day["probability"].to_numpy(dtype=np.float64)
        feature, worst = drift.get(dt, (None, math.nan))
        rows.append({
            "model_version": str(version), "source": source, "dt": str(dt), "rows": int(len(y)),
            "roc_auc": training._auc(y, p), "brier": float(np.mean((p - y) ** 2)),
            "ece": training.expected_calibration_error(y, p), "positive_rate": float(y.mean()),
            "predicted_positive_rate": float(day["label"].mean()), "mean_probability": float(p.mean()),
            "psi_max": float(worst), "psi_feature": feature,
        })
    return pd.DataFrame(rows, columns=list(DAILY_COLUMNS))


# --------------------------------------------------------------------------- the rule

@dataclass(frozen=True)
class DegradationRule:
    """The champion degraded when its daily ROC AUC stayed below ``auc_floor`` for the last
    ``days`` monitored days in a row, or any feature's PSI on the latest day exceeds
    ``psi_limit``. Days with fewer than ``min_rows`` outcomes are not judged."""

    auc_floor: float = 0.62
    days: int = 3
    psi_limit: float = 0.2
    min_rows: int = 100


def degradation(series: pd.DataFrame, rule: DegradationRule) -> str | None:
    """The reason to retrain, or None, from one version's daily rows (:data:`DAILY_COLUMNS`,
    batch source) ordered by day (pure)."""
    judged = series.loc[series["rows"] >= rule.min_rows].sort_values("dt")
    if judged.empty:
        return None
    tail = judged.tail(rule.days)
    if len(tail) == rule.days and (tail["roc_auc"] < rule.auc_floor).all():
        values = ", ".join(f"{dt} {auc:.3f}" for dt, auc in zip(tail["dt"], tail["roc_auc"]))
        return (f"ROC AUC below {rule.auc_floor} for {rule.days} days in a row "
                f"(v{tail['model_version'].iloc[-1]}: {values})")
    last = judged.iloc[-1]
    if not math.isnan(last["psi_max"]) and last["psi_max"] > rule.psi_limit:
        return (f"feature drift: PSI of {last['psi_feature']} {last['psi_max']:.3f} > {rule.psi_limit} "
                f"on {last['dt']} (v{last['model_version']})")
    return None
