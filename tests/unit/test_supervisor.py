"""The supervisor: the back-off policy (pure), and real children killed with SIGKILL being
reaped (not left as zombies) and restarted; the stack's liveness check sees zombies as dead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from contrail.stack.supervisor import AdoptedProcess, RestartPolicy, Supervisor, read_status, restart_delay

POLICY = RestartPolicy(first_delay_s=1.0, factor=2.0, max_delay_s=5.0, max_restarts=4, window_s=100.0)


def test_back_off_doubles_from_the_first_delay_up_to_the_cap():
    delays = []
    restarts: list[float] = []
    for now in (10.0, 11.0, 12.0, 13.0):
        delays.append(restart_delay(POLICY, restarts, now))
        restarts.append(now)
    assert delays == [1.0, 2.0, 4.0, 5.0]


def test_gives_up_after_max_restarts_within_the_window():
    assert restart_delay(POLICY, [10.0, 11.0, 12.0, 13.0], 14.0) is None


def test_restarts_older_than_the_window_do_not_count():
    # four restarts, but three are more than 100 s old: the count starts again
    assert restart_delay(POLICY, [1.0, 2.0, 3.0, 95.0], 150.0) == 2.0
    assert restart_delay(POLICY, [1.0, 2.0, 3.0, 4.0], 200.0) == 1.0


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)


def _until(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _is_zombie(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def children():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_child_killed_with_sigkill_is_reaped_and_restarted(tmp_path, children):
    first = _sleeper()
    children.append(first)

    def spawn(_name):
        proc = _sleeper()
        children.append(proc)
        return proc

    status = tmp_path / "supervision.json"
    sup = Supervisor(spawn, status, policy=RestartPolicy(first_delay_s=0.1), poll_s=0.05)
    sup.watch("scheduler", first)
    sup.start()
    try:
        os.kill(first.pid, signal.SIGKILL)
        restarted = _until(lambda: read_status(status).get("scheduler", {}).get("restarts") == 1
                           and read_status(status)["scheduler"])
    finally:
        sup.stop()
    assert restarted["pid"] != first.pid and restarted["state"] == "running"
    assert restarted["last_exit"] == -signal.SIGKILL
    assert not _is_zombie(first.pid)  # reaped, not left <defunct>
    assert children[-1].poll() is None and children[-1].pid == restarted["pid"]


def test_nothing_is_restarted_once_supervision_stopped(tmp_path, children):
    proc = _sleeper()
    children.append(proc)
    spawned = []
    sup = Supervisor(lambda name: spawned.append(name) or _sleeper(), tmp_path / "s.json",
                     policy=RestartPolicy(first_delay_s=0.0), poll_s=0.05).start()
    sup.watch("worker", proc)
    sup.stop()
    proc.kill()
    proc.wait()
    time.sleep(0.3)
    assert spawned == []


def test_a_component_that_keeps_dying_is_given_up_on(tmp_path):
    dying = lambda _name: subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"],  # noqa: E731
                                           start_new_session=True)
    clock = [0.0]
    sup = Supervisor(dying, tmp_path / "s.json", clock=lambda: clock[0],
                     policy=RestartPolicy(first_delay_s=1.0, max_restarts=2, window_s=60.0))
    sup.watch("api-server", dying("api-server"))
    states = []
    for _ in range(40):  # one pass per simulated second; a short-lived child exits between passes
        time.sleep(0.05)
        sup.check()
        clock[0] += 1.0
        states.append(sup.status()["api-server"]["state"])
        if states[-1] == "gave-up":
            break
    assert states[-1] == "gave-up" and sup.status()["api-server"]["restarts"] == 2
    assert sup.status()["api-server"]["last_exit"] == 3


def test_a_zombie_counts_as_dead_for_the_stack(tmp_path, children):
    from contrail.stack.local import _read_pid

    proc = _sleeper()
    children.append(proc)
    os.kill(proc.pid, signal.SIGKILL)
    _until(lambda: _is_zombie(proc.pid))
    os.kill(proc.pid, 0)  # the trap: a zombie still answers signal 0
    assert AdoptedProcess(proc.pid).poll() is not None
    pid_file = tmp_path / "scheduler.pid"
    pid_file.write_text(str(proc.pid))
    assert _read_pid(pid_file) is None
    assert not _is_zombie(proc.pid)  # and the liveness check reaped it
