"""``contrail rerun <stage>``: the arguments become the run's conf (the re-run Params), options a
stage does not take are refused, and the run is triggered through the REST client."""

from __future__ import annotations

import pytest

from contrail import cli


def conf(*argv: str) -> dict:
    return cli.rerun_conf(cli.build_parser().parse_args(["rerun", *argv]))


def test_range_rebuild_and_reason_map_to_the_rerun_params():
    assert conf("features", "--from", "2013-01-01", "--to", "2013-01-31", "--rebuild", "changed",
                "--reason", "new job") == {"from_date": "2013-01-01", "to_date": "2013-01-31",
                                           "rebuild": "changed", "reason": "new job"}
    assert conf("quality") == {"rebuild": "pending"}
    assert conf("scoring", "--from", "2013-01-02", "--model-version", "4", "--rebuild", "all") == {
        "from_date": "2013-01-02", "rebuild": "all", "model_version": "4"}
    assert conf("training", "--from", "2013-02-01", "--to", "2013-03-31", "--mode", "backtest") == {
        "from_date": "2013-02-01", "to_date": "2013-03-31", "mode": "backtest"}


@pytest.mark.parametrize("argv, message", [
    (("features", "--model-version", "3"), "scoring only"),
    (("scoring", "--mode", "backtest"), "training only"),
    (("training", "--rebuild", "all"), "fits anew"),
    (("training", "--mode", "backtest", "--from", "2013-01-01"), "needs --from and --to"),
    (("quality", "--from", "2013-02-01", "--to", "2013-01-01"), "after"),
    (("features", "--from", "01/02/2013"), "not a date"),
])
def test_options_a_stage_does_not_take_are_refused(argv, message):
    with pytest.raises(ValueError, match=message):
        conf(*argv)


def test_the_run_is_triggered_with_the_conf_and_its_url_printed(monkeypatch, capsys):
    from contrail.stack import api

    calls = []

    class Client:
        def __init__(self, *args):
            self.args = args

        def trigger(self, dag_id, **kwargs):
            calls.append((self.args, dag_id, kwargs))
            return {"dag_run_id": "manual__2026-12-02T01:00:00+00:00"}

    monkeypatch.setattr(api, "AirflowClient", Client)
    monkeypatch.setenv("CONTRAIL_AIRFLOW_USER", "ops")
    monkeypatch.setenv("CONTRAIL_AIRFLOW_PASSWORD", "pw")
    monkeypatch.setenv("CONTRAIL_AIRFLOW_URL", "http://airflow.example:8080")
    assert cli.main(["rerun", "scoring", "--from", "2013-01-02", "--model-version", "2"]) == 0
    (args, dag_id, kwargs), = calls
    assert dag_id == "scoring" and kwargs == {"conf": {"from_date": "2013-01-02", "rebuild": "pending",
                                                       "model_version": "2"}}
    assert args[1:] == ("ops", "pw")
    out = capsys.readouterr().out
    assert "manual__2026-12-02T01:00:00+00:00" in out
    assert f"{args[0]}/dags/scoring/runs/manual__2026-12-02T01%3A00%3A00%2B00%3A00" in out
    assert cli.main(["rerun", "features", "--model-version", "2"]) == 2 and len(calls) == 1
