"""A small client for Airflow's public REST API (``/api/v2``), used by the demo, the CLI and
the end-to-end tests: token auth, DAG runs, backfills, pausing, task states.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import requests

from contrail.settings import Settings

TERMINAL = {"success", "failed"}


class AirflowApiError(RuntimeError):
    pass


def _instant(value: str) -> datetime:
    """An API timestamp (``2013-01-05T00:00:00Z`` or ``…+00:00``) as an aware datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass
class AirflowClient:
    base_url: str
    username: str
    password: str
    session: requests.Session = field(default_factory=requests.Session)
    _token: str | None = None

    @classmethod
    def for_local(cls, settings: Settings) -> "AirflowClient":
        from contrail.stack.state import AIRFLOW_USER, airflow_password

        return cls(settings.airflow_url, AIRFLOW_USER, airflow_password(settings))

    def token(self) -> str:
        if self._token is None:
            resp = self.session.post(f"{self.base_url}/auth/token",
                                     json={"username": self.username, "password": self.password},
                                     timeout=30)
            if resp.status_code >= 300:
                raise AirflowApiError(f"login failed ({resp.status_code}): {resp.text[:300]}")
            self._token = resp.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, *, retries: int = 10, **kwargs: Any) -> Any:
        """Call ``/api/v2{path}``; retries SQLite's transient 'database is locked' (503)."""
        url = f"{self.base_url}/api/v2{path}"
        for attempt in range(retries):
            resp = self.session.request(method, url, timeout=60,
                                        headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
            if resp.status_code == 401 and attempt == 0:
                self._token = None
                continue
            # SQLite contention surfaces as 503 "database is locked" or a 500 "Database error";
            # the transaction was rolled back, so the same request is safe to repeat
            transient = resp.status_code in (502, 503, 504) or (
                resp.status_code == 500 and "Database error" in resp.text)
            if transient and attempt < retries - 1:
                time.sleep(1 + attempt)
                continue
            if resp.status_code >= 300:
                raise AirflowApiError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
            return resp.json() if resp.content else None
        raise AirflowApiError(f"{method} {path}: retries exhausted")

    # ------------------------------------------------------------------ DAGs and runs
    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.request("GET", "/dags", params={"limit": 100})["dags"]}

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, *, logical_date: str | None = None, conf: dict | None = None,
                run_id: str | None = None) -> dict:
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns",
                            params={"limit": 1000, "order_by": "-run_after"})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def backfill(self, dag_id: str, from_date: str, to_date: str, *, reprocess: str = "none",
                 max_active_runs: int = 2, attempts: int = 3, settle: float = 30.0) -> dict:
        """Create a backfill of ``[from_date, to_date]`` and return it once its runs exist.

        Under SQLite contention a create can fail half-way, and the client's retry of the 503 or
        500 is then refused with 409 "already a running backfill": Airflow committed the backfill
        row and either failed on its runs (it removes that row, best-effort, or its scheduler
        completes it after two minutes) or succeeded and only the answer was lost (its runs may
        even have finished by the time the 409 arrives). So after a 409 the newest backfill of the
        same DAG and dates, running or completed, is the one asked for when the runs the dry run
        names have become backfill runs since this call began (within ``settle`` seconds); a
        running one whose runs never appear is cancelled, and the create repeated. A 409 while a
        backfill of other dates runs is an error that names it; a 409 with nothing running any
        more (the refusing backfill finished in between) is simply tried again.
        """
        body = {"dag_id": dag_id, "from_date": from_date, "to_date": to_date,
                "reprocess_behavior": reprocess, "max_active_runs": max_active_runs,
                "run_backwards": False, "dag_run_conf": {}}
        expected = {_instant(b["logical_date"]) for b in self.request(
            "POST", "/backfills/dry_run", json=body)["backfills"] if b.get("logical_date")}
        since = datetime.now(timezone.utc)
        for attempt in range(attempts):
            try:
                return self.request("POST", "/backfills", json=body)
            except AirflowApiError as exc:
                if " -> 409:" not in str(exc):
                    raise
            listed = self.request("GET", "/backfills",
                                  params={"dag_id": dag_id, "limit": 100, "order_by": "-id"})["backfills"]
            same = next((b for b in listed if _instant(b["from_date"]) == _instant(from_date)
                         and _instant(b["to_date"]) == _instant(to_date)), None)
            if same is not None and self._backfill_runs_appear(dag_id, expected, since, timeout=settle):
                return same
            if same is not None and same.get("completed_at") is None:
                if attempt < attempts - 1:
                    self.cancel_backfill(same["id"])
                continue
            other = [b for b in listed if b.get("completed_at") is None and b is not same]
            if other:
                raise AirflowApiError(
                    f"backfill of {dag_id} [{from_date}, {to_date}] refused: backfill {other[0]['id']} of "
                    f"{dag_id} [{other[0]['from_date']}, {other[0]['to_date']}] is still running (Airflow "
                    "runs one backfill per DAG at a time); wait for it to finish, or cancel it")
            time.sleep(1 + attempt)
        raise AirflowApiError(f"backfill of {dag_id} [{from_date}, {to_date}]: tried {attempts} times, "
                              f"and none of its runs ({len(expected)}) appeared")

    def _backfill_runs_appear(self, dag_id: str, expected: set[datetime], since: datetime, *,
                              timeout: float, poll: float = 2.0) -> bool:
        """Whether every day in ``expected`` has a backfill run queued after ``since``."""
        if not expected:
            return True
        deadline = time.monotonic() + timeout
        while True:
            runs = self.request("GET", f"/dags/{dag_id}/dagRuns", params={
                "limit": 1000, "logical_date_gte": min(expected).isoformat(),
                "logical_date_lte": max(expected).isoformat()})["dag_runs"]
            backfilled = {_instant(r["logical_date"]) for r in runs
                          if r.get("run_type") == "backfill" and r.get("queued_at")
                          and _instant(r["queued_at"]) >= since}
            if expected <= backfilled:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def cancel_backfill(self, backfill_id: int) -> None:
        """Cancel a running backfill (its queued runs fail); one already gone or done is left be."""
        try:
            self.request("PUT", f"/backfills/{backfill_id}/cancel")
        except AirflowApiError as exc:
            if " -> 404:" not in str(exc) and " -> 409:" not in str(exc):
                raise

    def wait_for_runs(self, dag_id: str, *, count: int, timeout: float, poll: float = 3.0,
                      since: str | None = None) -> list[dict]:
        """Wait until at least ``count`` runs (created after ``since``) are terminal."""
        deadline = time.monotonic() + timeout
        last: list[dict] = []
        while time.monotonic() < deadline:
            last = [r for r in self.runs(dag_id) if since is None or (r.get("queued_at") or "") >= since]
            done = [r for r in last if r["state"] in TERMINAL]
            if len(done) >= count:
                return done
            time.sleep(poll)
        states = [(r["dag_run_id"], r["state"]) for r in last]
        raise AirflowApiError(f"{dag_id}: fewer than {count} finished runs after {timeout:.0f}s: {states}")
