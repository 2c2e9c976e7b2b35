"""Finding a job's processes on this host by the job id in their environment.

Every process a job starts inherits LEADERSBOARD_JOB_ID, even one that left the job's process
group (setsid) or was orphaned when its worker died; so this finds what a group kill misses.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

JOB_ENV = "LEADERSBOARD_JOB_ID"


def job_processes(job_id: str, proc: Path = Path("/proc")) -> list[int]:
    return processes_with_env(JOB_ENV, job_id, proc)


def processes_with_env(name: str, value: str, proc: Path = Path("/proc")) -> list[int]:
    """Pids of the processes whose environment has `name=value` (this one excepted; those of other
    users are not readable unless we are root)."""
    needle = f"{name}={value}".encode()
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_job_processes(job_id: str) -> int:
    """SIGKILL every process of the job on this host; how many were found."""
    pids = job_processes(job_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)
