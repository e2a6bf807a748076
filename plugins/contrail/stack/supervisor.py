"""Keep the stack's components alive: a component that exits is restarted after a bounded,
growing back-off; one that keeps dying is given up on. Every death and restart is logged
and recorded in a status file that ``contrail stack status`` reads from another process.

The supervisor must be the parent of what it watches and reap it: a child killed with
``kill -9`` stays a zombie until its parent waits for it, and a zombie still answers
``kill(pid, 0)``. ``Popen.poll()`` both reaps and reports the exit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol, Sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """Back-off 1 s, 2 s, 4 s … capped; give up after ``max_restarts`` within ``window_s``."""

    first_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 30.0
    max_restarts: int = 5
    window_s: float = 600.0


def restart_delay(policy: RestartPolicy, restarts: Sequence[float], now: float) -> float | None:
    """Seconds to wait before restarting a component that just died, or None to give up.

    ``restarts`` are the (monotonic) times of its earlier restarts; only those within the
    window count, so a component that ran fine for a while starts again from the first delay.
    """
    recent = [t for t in restarts if now - t <= policy.window_s]
    if len(recent) >= policy.max_restarts:
        return None
    return min(policy.first_delay_s * policy.factor ** len(recent), policy.max_delay_s)


class Process(Protocol):
    pid: int

    def poll(self) -> int | None: ...


@dataclass
class AdoptedProcess:
    """A component known by its pid only (started before this supervisor, maybe by another
    process): reaped if it is this process's child, else its death is read from its state,
    zombies included."""

    pid: int

    def poll(self) -> int | None:
        import psutil

        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            pass  # not a child of this process: its parent reaps it
        try:
            if psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            pass
        return -1


@dataclass
class Watched:
    name: str
    proc: Process
    restart_times: list[float] = field(default_factory=list)
    restarts: int = 0
    state: str = "running"  # running | backing-off | gave-up
    restart_due: float | None = None
    last_exit: int | None = None
    last_restart: str | None = None


class Supervisor:
    """Watches named processes; ``check()`` is one pass (reap, schedule, restart what is due),
    ``start()`` runs it on a daemon thread every ``poll_s`` until ``stop()``."""

    def __init__(self, spawn: Callable[[str], Process], status_file: Path, *,
                 policy: RestartPolicy = RestartPolicy(), poll_s: float = 0.5,
                 on_restarted: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._spawn = spawn
        self._status_file = status_file
        self._policy = policy
        self._poll_s = poll_s
        self._on_restarted = on_restarted
        self._clock = clock
        self._watched: dict[str, Watched] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, name: str, proc: Process) -> None:
        with self._lock:
            self._watched[name] = Watched(name, proc)
        self._write_status()

    def status(self) -> dict[str, dict]:
        with self._lock:
            return {w.name: {"pid": w.proc.pid, "state": w.state, "restarts": w.restarts,
                             "last_exit": w.last_exit, "last_restart": w.last_restart}
                    for w in self._watched.values()}

    def check(self) -> None:
        changed = False
        for w in list(self._watched.values()):
            if self._stopping.is_set():
                return
            if w.state == "running":
                code = w.proc.poll()
                if code is None:
                    continue
                changed = True
                w.last_exit = code
                _kill_group(w.proc.pid)  # what the dead leader left behind (its task processes)
                delay = restart_delay(self._policy, w.restart_times, self._clock())
                if delay is None:
                    w.state = "gave-up"
                    log.error("%s exited with %s; %d restarts within %.0f s: giving up", w.name, code,
                              self._policy.max_restarts, self._policy.window_s)
                    continue
                w.state, w.restart_due = "backing-off", self._clock() + delay
                log.warning("%s (pid %d) exited with %s; restarting in %.0f s", w.name, w.proc.pid, code, delay)
            elif w.state == "backing-off" and w.restart_due is not None and self._clock() >= w.restart_due:
                changed = True
                try:
                    proc = self._spawn(w.name)
                except Exception:  # noqa: BLE001 - a failed spawn counts as a death; back off again
                    log.exception("restarting %s failed", w.name)
                    w.restart_times.append(self._clock())
                    delay = restart_delay(self._policy, w.restart_times, self._clock())
                    w.state = "gave-up" if delay is None else "backing-off"
                    w.restart_due = None if delay is None else self._clock() + delay
                    continue
                with self._lock:
                    w.proc, w.state, w.restart_due = proc, "running", None
                    w.restart_times.append(self._clock())
                    w.restarts += 1
                    w.last_restart = datetime.now(timezone.utc).isoformat(timespec="seconds")
                log.warning("%s restarted as pid %d (restart %d)", w.name, proc.pid, w.restarts)
                if self._on_restarted is not None:
                    self._on_restarted(w.name)
        if changed:
            self._write_status()

    def start(self) -> "Supervisor":
        self._thread = threading.Thread(target=self._run, name="contrail-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop supervising (nothing is restarted after this returns); the processes stay."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stopping.wait(self._poll_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the supervisor must outlive one bad pass
                log.exception("supervision pass failed")

    def _write_status(self) -> None:
        body = {"supervisor_pid": os.getpid(), "components": self.status()}
        tmp = self._status_file.with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(body, indent=2))
        tmp.replace(self._status_file)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_status(status_file: Path) -> dict[str, dict]:
    """The last recorded supervision state per component ({} when none was recorded)."""
    try:
        return json.loads(status_file.read_text()).get("components", {})
    except (OSError, ValueError):
        return {}
