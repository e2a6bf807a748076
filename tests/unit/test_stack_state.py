"""The stack's state and secrets module is what the REST client and the process control share:
the client no longer imports the process control (no import cycle)."""

from __future__ import annotations

import subprocess
import sys


def test_the_api_client_does_not_import_the_stack_process_control():
    code = ("import sys, contrail.stack.api as api; api.AirflowClient.for_local;"
            "print('contrail.stack.local' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_secrets_are_created_once_and_the_client_logs_in_with_them(tmp_path):
    from contrail.settings import load_settings
    from contrail.stack import state
    from contrail.stack.api import AirflowClient

    settings = load_settings({"CONTRAIL_STATE_DIR": str(tmp_path)})
    first = state.ensure_secrets(settings)
    assert state.ensure_secrets(settings) == first
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    client = AirflowClient.for_local(settings)
    assert (client.username, client.password) == (state.AIRFLOW_USER, first["airflow_password"])


def test_cpu_by_component_counts_the_process_and_its_finished_children_apart(monkeypatch):
    """A component's own CPU and its children's (the scheduler's task processes, reaped once
    they end) are reported apart: what the benchmark prints as where the time went."""
    from contrail.stack import local

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}], check=True)\n"  # a child that ends
        "print('ready', flush=True)\ntime.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        monkeypatch.setattr(local, "running", lambda settings: {"scheduler": parent.pid})
        cpu = local.cpu_by_component(None)
        assert set(cpu) == {"scheduler", "scheduler children"}
        assert cpu["scheduler children"] >= 0.3 > cpu["scheduler"] > 0
    finally:
        parent.kill()
        parent.wait()


def test_memory_by_component_counts_the_live_children_too(monkeypatch):
    """A component's memory is its process tree's: a Celery worker's pool, the scheduler's
    LocalExecutor workers."""
    from contrail.stack import local

    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'b = bytearray(64 * 2**20); import time; "
        "print(1, flush=True); time.sleep(30)'], stdout=subprocess.PIPE)\n"
        "child.stdout.readline()\nprint('ready', flush=True)\ntime.sleep(30)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        monkeypatch.setattr(local, "running", lambda settings: {"scheduler": parent.pid, "gone": 2**22 + 1})
        memory = local.memory_by_component(None)
        assert set(memory) == {"scheduler"}  # a component that has gone is left out
        assert memory["scheduler"] > 64  # MiB: the child's buffer is counted with its parent
        assert len(local.stack_processes(None)) == 2
    finally:
        for proc in __import__("psutil").Process(parent.pid).children(recursive=True):
            proc.kill()
        parent.kill()
        parent.wait()


def test_the_memory_sampler_keeps_what_each_component_held_at_the_peak(monkeypatch):
    import time

    from contrail.demo import MemorySampler
    from contrail.stack import local

    readings = iter([{"emulator": 100.0, "scheduler": 50.0}, {"emulator": 120.0, "scheduler": 300.0},
                     {"emulator": 200.0, "scheduler": 10.0}])
    monkeypatch.setattr(local, "memory_by_component", lambda settings: next(readings, {"emulator": 1.0}))
    with MemorySampler(None, interval=0.01) as mem:
        while len(mem.samples) < 4:
            time.sleep(0.01)
    assert mem.samples[:3] == [150.0, 420.0, 210.0] and mem.peak == 420.0
    assert mem.peak_by_component == {"emulator": 120.0, "scheduler": 300.0}
