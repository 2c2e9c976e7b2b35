"""What a `serve` started, found again so that none of it outlives serve.

Two marks, each enough where the other fails:

- the process groups serve started (each child leads one), recorded with their leader's start time
  (`/proc/PID/stat`): a group is killed only while its leader is that very process, never a pid
  reused since;
- a mark of its own (random, one per run) that serve puts in its environment before it starts
  anything: every process it starts, and every process those start, inherits it, whatever group or
  session it moves to (MLflow's gunicorn workers, say, once their leader is gone).

Jobs get an environment of their own, without the mark: they end with their worker (parent-death
signal, the jail's PID namespace) and the reconciler removes what is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Mapping
from typing import Any

from leadersboard.runner.processes import processes_with_env

MARK_ENV = "LEADERSBOARD_SERVE_MARK"
KILL_ROUNDS = 10  # a process may start another between a scan and its kill: scan again until none is left


def new_mark() -> str:
    return secrets.token_hex(12)


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def end_leftovers(mark: str, groups: Mapping[str, Any], spare: tuple[int, ...] = ()) -> int:
    """SIGKILL what a serve started: the recorded groups (name -> [leader pid, start time]) whose
    leader is still the recorded process, then every process carrying `mark` (this one and `spare`
    excepted). How many groups and processes were killed."""
    spare = (*spare, os.getpid())
    killed = 0
    for leader, started in groups.values():
        if start_time(leader) == started and leader not in spare:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(leader, signal.SIGKILL)
                killed += 1
    return killed + _kill_marked(mark, spare)


def marked_processes(mark: str, spare: tuple[int, ...] = ()) -> list[int]:
    """The live processes carrying `mark` (this one and `spare` excepted)."""
    return [pid for pid in processes_with_env(MARK_ENV, mark) if pid not in spare]


def _kill_marked(mark: str, spare: tuple[int, ...]) -> int:
    """(A killed process is a zombie until reaped, and a zombie's environment cannot be read: it is
    not listed again.)"""
    killed: set[int] = set()
    for _ in range(KILL_ROUNDS):
        pids = marked_processes(mark, spare)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.update(pids)
        time.sleep(0.05)
    return len(killed)
