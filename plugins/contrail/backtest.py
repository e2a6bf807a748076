"""Walk-forward backtest of the training recipe: one model per week of a range, each fitted only
on the days before its week and tested on that week, the way it would have been served.

Pure parts (:func:`weeks`, :func:`fold_days`, :func:`fold_split`, :func:`summary`,
:func:`auc_figure`) take and return plain values; :func:`log_backtest` is the MLflow edge: one
parent run holding the weekly table, the mean and the plot, with one nested child run per week.
A backtest registers and promotes nothing: it measures the recipe, it does not change what is
served.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

WEEK_DAYS = 7
TABLE_ARTIFACT = "backtest/weekly_test_auc.json"
PLOT_ARTIFACT = "backtest/weekly_test_auc.png"


@dataclass(frozen=True)
class Week:
    """One test period, inclusive at both ends."""

    first: date
    last: date

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last


@dataclass(frozen=True)
class Fold:
    """What one fold reads: the days it trains on, validates on (both strictly before its
    week) and tests on (the published days of its week)."""

    week: Week
    train: list[date]
    valid: list[date]
    test: list[date]

    @property
    def complete(self) -> bool:
        return bool(self.train and self.valid and self.test)


def weeks(first: date, last: date, *, days: int = WEEK_DAYS) -> list[Week]:
    """Consecutive test periods of ``days`` days from ``first``; the last one ends at ``last``."""
    if days < 1:
        raise ValueError("a test period needs at least one day")
    if last < first:
        raise ValueError(f"range {first}..{last} is empty")
    out, start = [], first
    while start <= last:
        out.append(Week(start, min(start + timedelta(days=days - 1), last)))
        start += timedelta(days=days)
    return out


def fold_days(available: Iterable[date], week: Week, *, window_days: int, valid_days: int) -> Fold:
    """The days of one fold, by training's split rules: the trailing ``window_days`` calendar days
    before the week, whose last ``valid_days`` are validation and the older ones training; the
    test is the week. Nothing on or after the week's first day is ever trained or validated on."""
    days = sorted(set(available))
    valid_start = week.first - timedelta(days=valid_days)
    window_start = week.first - timedelta(days=window_days)
    return Fold(week=week,
                train=[d for d in days if window_start <= d < valid_start],
                valid=[d for d in days if valid_start <= d < week.first],
                test=[d for d in days if week.covers(d)])


def folds(available: Iterable[date], first: date, last: date, *, window_days: int, valid_days: int,
          week_days: int = WEEK_DAYS) -> list[Fold]:
    """Every fold of the range ``first..last`` (see :func:`fold_days`)."""
    days = sorted(set(available))
    return [fold_days(days, w, window_days=window_days, valid_days=valid_days)
            for w in weeks(first, last, days=week_days)]


def fold_split(frame: pd.DataFrame, fold: Fold):
    """The fold's rows as a :class:`contrail.training.Split` (``dt`` is the ISO day)."""
    from contrail import training

    day = frame["dt"].astype(str)

    def rows(days: Sequence[date]) -> pd.DataFrame:
        return frame.loc[day.isin([d.isoformat() for d in days])]

    return training.Split(train=rows(fold.train), valid=rows(fold.valid), test=rows(fold.test),
                          valid_start=fold.valid[0], test_start=fold.week.first)


def summary(results: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, float]:
    """The weekly table (``week_start``, ``week_end``, ``test_roc_auc``, ``train_days``,
    ``test_rows``, ``status``) and the mean test AUC over the folds that ran (NaN if none)."""
    table = pd.DataFrame(list(results), columns=["week_start", "week_end", "test_roc_auc", "train_days",
                                                 "test_rows", "status"])
    aucs = [float(a) for a in table["test_roc_auc"] if a is not None and not math.isnan(float(a))]
    return table, (sum(aucs) / len(aucs) if aucs else math.nan)


def auc_figure(table: pd.DataFrame, mean_auc: float):
    """Weekly test AUC with the mean as a line (matplotlib object API, no pyplot state)."""
    from matplotlib.figure import Figure

    ran = table.dropna(subset=["test_roc_auc"])
    fig = Figure(figsize=(6, 4), dpi=100, layout="tight")
    ax = fig.add_subplot()
    ax.set(title=f"Walk-forward backtest: test AUC per week (mean {mean_auc:.3f})",
           xlabel="week starting", ylabel="test ROC AUC")
    ax.plot(ran["week_start"], ran["test_roc_auc"].astype(float), marker="o")
    if not math.isnan(mean_auc):
        ax.axhline(mean_auc, linestyle="--", color="grey")
    ax.tick_params(axis="x", labelrotation=45)
    return fig


def log_backtest(*, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any],
                 fold_runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Log a backtest to MLflow (experiment set by the caller): a parent run with ``params``,
    ``tags``, the weekly table, ``mean_test_roc_auc`` and the plot; one nested child run per
    fold that ran, with its week, days and test metrics. ``fold_runs`` items carry ``fold``
    (a :class:`Fold`) and, when it ran, ``metrics`` (test metrics) and ``fit_metrics``.
    Returns the parent run id, the child run ids and the mean."""
    import mlflow

    results, children = [], []
    with mlflow.start_run(run_name=run_name) as parent:
        mlflow.set_tags({**tags, "contrail.backtest": "parent"})
        mlflow.log_params(dict(params))
        for item in fold_runs:
            fold: Fold = item["fold"]
            metrics = item.get("metrics")
            row = {"week_start": fold.week.first.isoformat(), "week_end": fold.week.last.isoformat(),
                   "test_roc_auc": None, "train_days": len(fold.train), "test_rows": item.get("test_rows", 0),
                   "status": item.get("status", "ran" if metrics else "skipped")}
            if metrics:
                with mlflow.start_run(run_name=f"week {fold.week.first}", nested=True) as child:
                    mlflow.set_tags({**tags, "contrail.backtest": "fold",
                                     "contrail.backtest.week": f"{fold.week.first}..{fold.week.last}"})
                    mlflow.log_params({"week_start": fold.week.first.isoformat(),
                                       "week_end": fold.week.last.isoformat(),
                                       "train_first": fold.train[0].isoformat(), "train_last": fold.train[-1].isoformat(),
                                       "valid_first": fold.valid[0].isoformat(), "valid_last": fold.valid[-1].isoformat(),
                                       "threshold": item.get("threshold")})
                    mlflow.log_metrics({f"test_{k}": float(v) for k, v in metrics.items() if not math.isnan(float(v))})
                    mlflow.log_metrics({f"fit_{k}": float(v) for k, v in (item.get("fit_metrics") or {}).items()
                                        if not math.isnan(float(v))})
                    children.append(child.info.run_id)
                row["test_roc_auc"] = float(metrics.get("roc_auc", math.nan))
            results.append(row)
        table, mean_auc = summary(results)
        mlflow.log_table(data=table, artifact_file=TABLE_ARTIFACT)
        if not math.isnan(mean_auc):
            mlflow.log_metric("mean_test_roc_auc", mean_auc)
        mlflow.log_metric("folds_ran", len(children))
        mlflow.log_figure(auc_figure(table, mean_auc), PLOT_ARTIFACT)
        return {"run_id": parent.info.run_id, "child_run_ids": children,
                "mean_test_roc_auc": None if math.isnan(mean_auc) else mean_auc,
                # strict JSON (the task's XCom goes through Airflow's API): no NaN
                "weeks": [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
                          for row in table.to_dict(orient="records")]}
