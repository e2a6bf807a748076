"""What a person asks of a stage when they re-run it: a range of days, how much to rebuild,
and why. Every stage DAG takes the same Params (:func:`contrail.dag_defaults.rerun_params`),
from the trigger form, ``contrail rerun <stage>`` or ``POST /api/v2/dags/{id}/dagRuns``; an
asset-triggered or scheduled run carries the defaults, which mean "what is pending, any day".

``rebuild`` says which partitions in the range the stage redoes:

* ``pending`` — only what is pending anyway (new or changed upstream input);
* ``changed`` — that, plus what the current code would make differently: a partition judged
  by another suite version, built by another feature-job version, scored by another model
  version (each stage compares the version its manifests or results record);
* ``all`` — every partition in the range, whatever its state.

Pure: no Airflow import, so stages and tests use it as plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping, TypeVar

PENDING, CHANGED, ALL = "pending", "changed", "all"
REBUILD_MODES = (PENDING, CHANGED, ALL)

T = TypeVar("T", date, str)


class RerunError(ValueError):
    """A re-run request that cannot be carried out as asked (bad range, unknown mode)."""


@dataclass(frozen=True)
class Rerun:
    """A stage's re-run request. ``first``/``last`` are inclusive; None leaves that end open."""

    first: date | None = None
    last: date | None = None
    rebuild: str = PENDING
    reason: str | None = None

    def covers(self, dt: date | str) -> bool:
        day = date.fromisoformat(dt) if isinstance(dt, str) else dt
        return (self.first is None or day >= self.first) and (self.last is None or day <= self.last)

    def within(self, days: Iterable[T]) -> list[T]:
        """The days of ``days`` inside the range, sorted."""
        return sorted(d for d in days if self.covers(d))

    def redoes(self, *, pending: bool, changed: bool) -> bool:
        """Whether a partition in range is redone under this request's ``rebuild`` mode."""
        return (pending or (self.rebuild == CHANGED and changed) or self.rebuild == ALL)

    @property
    def is_default(self) -> bool:
        return self == Rerun()

    def as_dict(self) -> dict[str, Any]:
        return {"from_date": self.first.isoformat() if self.first else None,
                "to_date": self.last.isoformat() if self.last else None,
                "rebuild": self.rebuild, "reason": self.reason}


def _day(value: Any, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise RerunError(f"{name}={value!r} is not a date (YYYY-MM-DD)") from None


def from_params(params: Mapping[str, Any]) -> Rerun:
    """The request a run's params carry (missing keys take the defaults)."""
    first, last = _day(params.get("from_date"), "from_date"), _day(params.get("to_date"), "to_date")
    if first and last and first > last:
        raise RerunError(f"from_date {first} is after to_date {last}")
    rebuild = params.get("rebuild") or PENDING
    if rebuild not in REBUILD_MODES:
        raise RerunError(f"rebuild={rebuild!r}: choose one of {', '.join(REBUILD_MODES)}")
    return Rerun(first=first, last=last, rebuild=rebuild, reason=params.get("reason") or None)
