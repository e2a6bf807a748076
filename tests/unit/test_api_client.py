"""The REST client's retry rules, against a scripted HTTP session (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contrail.stack import api
from contrail.stack.api import AirflowApiError, AirflowClient


class Response:
    def __init__(self, status: int, body: Any):
        self.status_code = status
        self.text = json.dumps(body)
        self.content = self.text.encode()
        self._body = body

    def json(self) -> Any:
        return self._body


class ScriptedSession:
    """Answers each request with the next scripted response; records (method, path)."""

    def __init__(self, *responses: Response):
        self.responses = list(responses)
        self.calls: list[tuple[str, str]] = []

    def post(self, url: str, **kwargs: Any) -> Response:  # the token endpoint
        return Response(201, {"access_token": "t"})

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.calls.append((method, url.split("/api/v2", 1)[1]))
        return self.responses.pop(0)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(api.time, "sleep", lambda s: None)


def client(*responses: Response) -> AirflowClient:
    return AirflowClient("http://127.0.0.1:1", "u", "p", session=ScriptedSession(*responses))


BACKFILL = {"id": 7, "dag_id": "landing_flights", "from_date": "2013-01-05T00:00:00Z",
            "to_date": "2013-01-05T00:00:00Z", "completed_at": None}


def test_sqlite_contention_is_retried():
    c = client(Response(503, {"detail": "database is locked"}),
               Response(500, {"detail": "Database error"}), Response(200, {"dags": []}))
    assert c.request("GET", "/dags") == {"dags": []}
    assert len(c.session.calls) == 3


DRY_RUN = Response(200, {"backfills": [{"logical_date": "2013-01-05T00:00:00Z"}], "total_entries": 1})


def _runs(run_type: str, queued_at: str) -> Response:
    return Response(200, {"dag_runs": [{"logical_date": "2013-01-05T00:00:00Z", "run_type": run_type,
                                        "queued_at": queued_at}], "total_entries": 1})


def test_a_backfill_committed_before_a_transient_error_is_found_not_refused():
    c = client(DRY_RUN, Response(500, {"detail": "Database error"}),
               Response(409, {"detail": "There is already a running backfill for dag landing_flights"}),
               Response(200, {"backfills": [BACKFILL], "total_entries": 1}),
               _runs("backfill", "2999-01-01T00:00:00Z"))
    made = c.backfill("landing_flights", "2013-01-05T00:00:00Z", "2013-01-05T00:00:00+00:00")
    assert made["id"] == 7
    assert c.session.calls == [("POST", "/backfills/dry_run"), ("POST", "/backfills"), ("POST", "/backfills"),
                               ("GET", "/backfills"), ("GET", "/dags/landing_flights/dagRuns")]


def test_a_backfill_left_without_runs_by_a_failed_create_is_cancelled_and_created_again():
    # the 503's backfill row outlived its runs: the 409 names it, but its day never becomes a
    # backfill run (the old scheduled run stays as it was), so it is cancelled and made again
    c = client(DRY_RUN, Response(503, {"detail": "Database is locked"}),
               Response(409, {"detail": "There is already a running backfill for dag landing_flights"}),
               Response(200, {"backfills": [BACKFILL], "total_entries": 1}),
               _runs("scheduled", "2000-01-01T00:00:00Z"),
               Response(200, {**BACKFILL, "completed_at": "2999-01-01T00:00:00Z"}),
               Response(200, {**BACKFILL, "id": 8}))
    made = c.backfill("landing_flights", "2013-01-05T00:00:00Z", "2013-01-05T00:00:00Z", settle=0)
    assert made["id"] == 8
    assert c.session.calls[-2:] == [("PUT", "/backfills/7/cancel"), ("POST", "/backfills")]


def test_a_backfill_that_never_gets_its_runs_is_an_error():
    orphan = [Response(409, {"detail": "There is already a running backfill"}),
              Response(200, {"backfills": [BACKFILL], "total_entries": 1}), _runs("scheduled", "2000-01-01T00:00:00Z")]
    c = client(DRY_RUN, *orphan, Response(404, {"detail": "gone"}), *orphan)
    with pytest.raises(AirflowApiError, match="none of its runs"):
        c.backfill("landing_flights", "2013-01-05T00:00:00Z", "2013-01-05T00:00:00Z", attempts=2, settle=0)


def test_a_different_running_backfill_is_still_an_error():
    other = {**BACKFILL, "from_date": "2013-02-01T00:00:00Z", "to_date": "2013-02-03T00:00:00Z"}
    c = client(DRY_RUN, Response(409, {"detail": "There is already a running backfill for dag landing_flights"}),
               Response(200, {"backfills": [other], "total_entries": 1}))
    with pytest.raises(AirflowApiError, match=r"backfill 7 of landing_flights .*2013-02-01.* is still running"):
        c.backfill("landing_flights", "2013-01-05T00:00:00Z", "2013-01-05T00:00:00Z")


def test_a_backfill_that_ran_to_completion_before_its_409_arrived_is_found():
    # the lost answer's backfill already did its one day: completed, and its run is a backfill run
    done = {**BACKFILL, "completed_at": "2999-01-01T00:00:10Z"}
    c = client(DRY_RUN, Response(503, {"detail": "Database is locked"}),
               Response(409, {"detail": "There is already a running backfill for dag landing_flights"}),
               Response(200, {"backfills": [done], "total_entries": 1}),
               _runs("backfill", "2999-01-01T00:00:00Z"))
    assert c.backfill("landing_flights", "2013-01-05T00:00:00Z", "2013-01-05T00:00:00Z")["id"] == 7


def test_a_409_from_a_backfill_gone_by_the_time_it_is_looked_up_is_tried_again():
    c = client(DRY_RUN, Response(409, {"detail": "There is already a running backfill for dag landing_flights"}),
               Response(200, {"backfills": [], "total_entries": 0}), Response(200, {**BACKFILL, "id": 9}))
    assert c.backfill("landing_flights", "2013-01-05T00:00:00Z", "2013-01-05T00:00:00Z")["id"] == 9
    assert c.session.calls[-1] == ("POST", "/backfills")


def test_client_errors_are_not_retried():
    c = client(Response(404, {"detail": "DAG not found"}))
    with pytest.raises(AirflowApiError, match="404"):
        c.request("GET", "/dags/nope")
    assert len(c.session.calls) == 1
