"""Policy every DAG must meet, parametrized per DAG (the Astronomer template's guard, plus ours):
imports clean, owner / tags / retries >= 2 / doc_md set, parses with the network blocked, and no
EMR cluster is created without a terminate task that always runs.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
EXPECTED_DAGS = {"landing_flights", "landing_weather", "quality", "features", "training", "scoring",
                 "stream_scoring", "stream_sweep", "stream_kinesis", "compaction", "monitoring"}


def _dagbag(path: Path | None = None):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(path or DAGS_DIR))


@pytest.fixture(scope="module")
def dagbag():
    return _dagbag()


def test_every_expected_dag_is_defined(dagbag):
    assert not dagbag.import_errors, dagbag.import_errors
    assert EXPECTED_DAGS <= set(dagbag.dag_ids)


def _dag_ids():
    return sorted(_dagbag().dag_ids)


@pytest.mark.parametrize("dag_id", _dag_ids())
def test_dag_metadata(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.owner == "contrail"
    assert dag.tags and "contrail" in dag.tags
    assert dag.doc_md and len(dag.doc_md.strip()) > 40
    for t in dag.tasks:
        assert t.retries >= 2, f"{dag_id}.{t.task_id} has retries={t.retries}"


class NetworkBlocked(RuntimeError):
    pass


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_without_network(path, monkeypatch):
    def refuse(*_a, **_k):
        raise NetworkBlocked("DAG files must not touch the network at parse time")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    bag = _dagbag(path)
    assert not bag.import_errors, bag.import_errors
    assert bag.dag_ids


def leaked_cluster_violations(dag) -> list[str]:
    """Tasks that create an EMR cluster without a downstream terminate task that always runs."""
    create_types = {"EmrCreateJobFlowOperator"}
    terminate_types = {"EmrTerminateJobFlowOperator"}
    problems = []
    for task in dag.tasks:
        if type(task).__name__ not in create_types:
            continue
        terminators = [t for t in task.get_flat_relatives(upstream=False)
                       if type(t).__name__ in terminate_types]
        if not terminators:
            problems.append(f"{dag.dag_id}.{task.task_id} creates a cluster but nothing terminates it")
        elif not any(str(t.trigger_rule) in ("all_done", "TriggerRule.ALL_DONE") for t in terminators):
            problems.append(f"{dag.dag_id}.{task.task_id}: terminate task must use trigger_rule=all_done")
    return problems


@pytest.mark.parametrize("dag_id", _dag_ids())
def test_no_dag_can_leak_an_emr_cluster(dagbag, dag_id):
    assert leaked_cluster_violations(dagbag.dags[dag_id]) == []


def test_leak_policy_catches_a_cluster_without_terminate():
    from datetime import datetime

    from airflow.providers.amazon.aws.operators.emr import (
        EmrCreateJobFlowOperator,
        EmrTerminateJobFlowOperator,
    )
    from airflow.sdk import DAG

    with DAG("leaky", schedule=None, start_date=datetime(2013, 1, 1)) as leaky:
        EmrCreateJobFlowOperator(task_id="create", job_flow_overrides={})
    assert leaked_cluster_violations(leaky)

    with DAG("fragile", schedule=None, start_date=datetime(2013, 1, 1)) as fragile:
        create = EmrCreateJobFlowOperator(task_id="create", job_flow_overrides={})
        create >> EmrTerminateJobFlowOperator(task_id="terminate", job_flow_id="j-1")
    assert "all_done" in leaked_cluster_violations(fragile)[0]

    with DAG("safe", schedule=None, start_date=datetime(2013, 1, 1)) as safe:
        create = EmrCreateJobFlowOperator(task_id="create", job_flow_overrides={})
        create >> EmrTerminateJobFlowOperator(task_id="terminate", job_flow_id="j-1", trigger_rule="all_done")
    assert leaked_cluster_violations(safe) == []


def test_network_block_catches_a_dag_that_calls_out(tmp_path, monkeypatch):
    bad = tmp_path / "calls_out.py"
    bad.write_text(
        "import socket\n"
        "from datetime import datetime\n"
        "from airflow.sdk import DAG\n"
        "socket.create_connection(('127.0.0.1', 9))\n"
        "with DAG('calls_out', schedule=None, start_date=datetime(2013, 1, 1)):\n"
        "    pass\n"
    )

    def refuse(*_a, **_k):
        raise NetworkBlocked("blocked")

    monkeypatch.setattr(socket, "create_connection", refuse)
    bag = _dagbag(bad)
    assert bag.import_errors and "blocked" in next(iter(bag.import_errors.values()))


def test_a_catch_up_of_landings_cannot_starve_the_stages_or_the_stream(dagbag):
    """Slots go to the highest priority weight, then the oldest logical date: landing's catch-up
    (dated 2013) must rank below every stage (asset-triggered, dated now), the stream above all."""
    from contrail.dag_defaults import LANDING_PRIORITY, STAGE_PRIORITY, STREAM_PRIORITY

    weights = {(dag_id, task.task_id): (task.priority_weight, str(task.weight_rule))
               for dag_id, dag in dagbag.dags.items() for task in dag.tasks}
    assert LANDING_PRIORITY < STAGE_PRIORITY < STREAM_PRIORITY
    for (dag_id, task_id), (weight, rule) in weights.items():
        expected = (LANDING_PRIORITY if dag_id.startswith("landing_") else
                    STREAM_PRIORITY if dag_id in ("stream_scoring", "stream_sweep", "stream_kinesis") else
                    STAGE_PRIORITY)
        assert (weight, rule) == (expected, "absolute"), (dag_id, task_id, weight, rule)
