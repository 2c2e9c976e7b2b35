"""Keeping alive what `serve` starts: each child has a thread that waits for it to die, ends what is
left of its process group, and starts it again after a back-off (`Backoff`: 1 s, doubling up to a
minute; back to 1 s once a child has run for a minute). Every death and restart is logged, and
`status()` says where each child is, for /healthz.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """When a dead child starts again: `first` seconds after its death, doubling up to `most`; after
    `first` again once it had run `stable` seconds. A child is looked at every `poll` seconds."""

    first: float = 1.0
    most: float = 60.0
    stable: float = 60.0
    poll: float = 0.5

    def after(self, backoff: float) -> float:
        """The back-off that follows one of `backoff` seconds."""
        return min(2 * backoff, self.most)


class Running(Protocol):
    """A started child: its process leads a process group of its own (start_new_session)."""

    @property
    def process(self) -> subprocess.Popen[bytes]: ...

    def stop(self) -> None:
        """Stop it and release what it holds; also called once it has died."""


R = TypeVar("R", bound=Running)


@dataclass
class Child:
    name: str
    start: Callable[[], Running]
    running: Running | None
    state: str = "up"  # up, restarting, stopped
    restarts: int = 0
    last_exit: str | None = None
    last_restart: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)  # a restart and the stop take turns

    def status(self) -> dict[str, Any]:
        running = self.running
        return {"state": self.state, "pid": running.process.pid if running else None, "restarts": self.restarts,
                "last_exit": self.last_exit, "last_restart": _iso(self.last_restart)}


class Supervisor:
    def __init__(self, on_start: Callable[[str, int], None] | None = None, backoff: Backoff = Backoff()) -> None:
        """`on_start(name, pid)` hears of every child started, restarts included."""
        self.backoff = backoff
        self._groups: list[list[Child]] = []
        self._stopping = threading.Event()
        self._on_start = on_start

    def keep(self, name: str, start: Callable[[], R]) -> R:
        """Start a child now (its failure is the caller's), then keep it alive with `start`."""
        first = self._started(name, start())
        self._watch_group([Child(name, start, first)])
        return first

    def keep_together(self, starts: Sequence[tuple[str, Callable[[], Running]]]) -> None:
        """Start children that stop together (the workers: their grace periods run at the same time)."""
        group: list[Child] = []
        try:
            for name, start in starts:
                group.append(Child(name, start, self._started(name, start())))
        finally:
            self._watch_group(group)  # those started so far: a failure here stops them with the rest

    def status(self) -> dict[str, dict[str, Any]]:
        return {child.name: child.status() for group in self._groups for child in group}

    def stop(self) -> None:
        """Stop every child, the last started first; no restart after this."""
        self._stopping.set()
        for group in reversed(self._groups):
            with ThreadPoolExecutor(len(group)) as pool:
                list(pool.map(_stop, group))

    def _started(self, name: str, running: R) -> R:
        if self._on_start is not None:
            self._on_start(name, running.process.pid)
        return running

    def _watch_group(self, group: list[Child]) -> None:
        if not group:
            return
        self._groups.append(group)
        for child in group:
            threading.Thread(target=self._watch, args=(child,), name=f"supervise {child.name}", daemon=True).start()

    def _watch(self, child: Child) -> None:
        backoff = self.backoff.first
        while True:
            running = child.running
            status = None if running is None else _wait_for_exit(running.process, self._stopping, self.backoff.poll)
            if running is None or status is None:
                return  # stopping
            with child.lock:
                if self._stopping.is_set():
                    return
                _end_group(running)
                child.running, child.state, child.last_exit = None, "restarting", status
            if time.monotonic() - child.started_at > self.backoff.stable:
                backoff = self.backoff.first
            log.warning("%s (pid %d) %s; starting it again in %.0f s", child.name, running.process.pid, status,
                        backoff)
            while not self._restart(child, backoff):
                backoff = self.backoff.after(backoff)
            backoff = self.backoff.after(backoff)

    def _restart(self, child: Child, after: float) -> bool:
        """Start the child again after `after` seconds: True once started (or when stopping meanwhile),
        False when it failed and a next try is due."""
        if self._stopping.wait(after):
            return True
        with child.lock:
            if self._stopping.is_set():
                return True
            try:
                running = self._started(child.name, child.start())
            except Exception as exc:  # the next try may work (a port still held, say): say it, try again
                log.error("%s could not start again: %s; next try in %.0f s", child.name, exc,
                          self.backoff.after(after))
                return False
            child.running, child.state, child.started_at = running, "up", time.monotonic()
            child.restarts += 1
            child.last_restart = time.time()
        log.warning("%s started again (pid %d); %d restart(s) so far", child.name, running.process.pid,
                    child.restarts)
        return True


def _stop(child: Child) -> None:
    with child.lock:
        if child.running is not None:
            child.running.stop()
        child.state = "stopped"


def _wait_for_exit(process: subprocess.Popen[bytes], stopping: threading.Event, poll: float) -> str | None:
    """How the process ended, once it has; None when `stopping` is set first. The process is left
    unreaped (a zombie): until then its pid, its group's id, cannot be given to another process."""
    while not stopping.wait(poll):
        try:
            found = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped already (by a stop)
            return "ended"
        if found is not None:
            if found.si_code == os.CLD_EXITED:
                return f"exited with code {found.si_status}"
            return f"was killed by {_signal_name(found.si_status)}"
    return None


def _end_group(running: Running) -> None:
    """What is left of a dead child's process group (MLflow's gunicorn, say) must not hold its port:
    killed while the dead leader still holds the group's id, then the leader is reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(running.process.pid, signal.SIGKILL)
    running.process.wait()
    running.stop()  # releases what it still holds (the guardian's pipe, say)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _iso(when: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)) if when else None
