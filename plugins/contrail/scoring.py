"""Batch scoring: one feature partition in, one predictions frame out, naming the model.

Consumes a feature frame (the ``features/<set>/dt=…`` contract; extra columns such as
``label`` are ignored, so yesterday's partition and tomorrow's schedule score alike) and a
fitted model (``contrail.registry.load_champion(name)``, which also brings the version's decision
threshold). Produces the rows
written under ``predictions/<model>/…``: every flight, whatever its eventual status — at
scoring time nobody knows which flights will be cancelled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from contrail.training import FEATURES, compute_threads

PREDICTION_COLUMNS: tuple[str, ...] = (
    "flight_id", "dt", "probability", "label", "model_name", "model_version", "run_id",
)


def score(
    model: Any,
    features: pd.DataFrame,
    *,
    model_name: str,
    model_version: str | int,
    run_id: str,
    threshold: float,
) -> pd.DataFrame:
    """Delay probability and predicted label (``probability >= threshold``) per flight.

    ``threshold`` is the one stored with the model version (``LoadedModel.threshold``: chosen
    on the validation window at training); there is no default, so no caller silently cuts at 0.5.
    Deterministic: rows come out sorted by ``dt`` then ``flight_id`` whatever the input
    order, and the same model on the same rows gives the same bytes.
    Raises ``KeyError`` if a feature column is missing and ``ValueError`` on duplicate
    ``flight_id`` (each row of a predictions partition is one flight).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    missing = [c for c in ("flight_id", "dt", *FEATURES) if c not in features.columns]
    if missing:
        raise KeyError(f"feature columns missing: {missing}")
    duplicated = features["flight_id"].duplicated()
    if duplicated.any():
        raise ValueError(f"duplicate flight_id, e.g. {features.loc[duplicated, 'flight_id'].iloc[0]!r}")

    rows = features.sort_values(["dt", "flight_id"], kind="stable").reset_index(drop=True)
    if rows.empty:
        probability = np.empty(0, dtype=np.float64)
    else:
        with compute_threads():
            probability = model.predict_proba(rows.loc[:, list(FEATURES)])[:, 1].astype(np.float64)
    return pd.DataFrame({
        "flight_id": rows["flight_id"].astype(str),
        "dt": rows["dt"].astype(str),
        "probability": probability,
        "label": (probability >= threshold).astype(np.int8),
        "model_name": model_name,
        "model_version": str(model_version),
        "run_id": run_id,
    }, columns=list(PREDICTION_COLUMNS))
