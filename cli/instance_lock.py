"""One `serve` per instance: a lock it holds for its lifetime, and the record of what it started.

The lock is `flock` on `run/serve.lock`; the kernel drops it when the holder's process ends, however
it ends, so a crashed serve never blocks the next one. Beside it, `run/serve.json` is the holder's
record: its pid, the mark its processes carry and the process groups it started (`leftovers.py`),
replaced whole at each change; a clean stop removes it. A serve that finds a record knows the
previous one did not stop cleanly, and what to end; so does the guardian, once serve is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .leftovers import start_time

LOCK_FILE = "serve.lock"
RECORD_FILE = "serve.json"


class InstanceBusy(Exception):
    """Another serve holds the instance."""


@dataclass
class InstanceLock:
    run_dir: Path
    fd: int
    left_by: dict[str, Any] | None  # the record of a serve that did not stop cleanly
    record: dict[str, Any] = field(default_factory=dict)
    _writing: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def acquire(cls, run_dir: Path) -> InstanceLock:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Never inherited by what serve starts: the lock is serve's alone.
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_record(run_dir).get("pid", "unknown")
            os.close(fd)
            raise InstanceBusy(f"another `leadersboard serve` (pid {holder}) is running this instance "
                               f"({run_dir.parent}); stop it first (SIGTERM or Ctrl-C)") from None
        return cls(run_dir, fd, read_record(run_dir) or None)

    def hold(self, mark: str) -> None:
        """Record who holds the instance now, and the mark of what it starts."""
        with self._writing:
            self.record = {"pid": os.getpid(), "mark": mark, "started": round(time.time(), 3), "groups": {}}
            self._write()

    def started(self, name: str, pid: int) -> None:
        """Record the process group serve started as `name` (its leader's pid and start time)."""
        with self._writing:
            self.record["groups"][name] = [pid, start_time(pid)]
            self._write()

    def release(self) -> None:
        """Give the instance up, everything this serve started stopped: the record goes."""
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / RECORD_FILE).unlink()
        os.close(self.fd)  # the lock goes with the descriptor

    def _write(self) -> None:
        path = self.run_dir / RECORD_FILE
        staged = path.with_suffix(".json.new")
        staged.write_text(json.dumps(self.record))
        staged.replace(path)  # whole: a reader never sees half a record


def read_record(run_dir: Path) -> dict[str, Any]:
    """The record of the serve holding (or last holding) the instance in `run_dir`; {} when none."""
    try:
        found = json.loads((run_dir / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
