"""The guardian: a small process that ends what `serve` started once serve is gone, however it went.

A serve killed with SIGKILL runs no clean-up of its own. The parent-death signal would not do:
it reaches direct children only (not MLflow's gunicorn workers) and fires when the thread that
started the child ends, not the process. So `serve` starts this process with the read end of a pipe
whose only write end serve keeps and never writes: when serve's process ends, the kernel closes it,
the guardian reads end-of-file, kills the process groups serve recorded and every process carrying
its mark (`leftovers.py`), and exits. A clean stop closes the pipe after stopping everything: the
guardian then finds nothing to kill.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .instance_lock import read_record
from .leftovers import MARK_ENV, end_leftovers, marked_processes

STOP_WAIT_SECONDS = 10
SETTLE_SECONDS = 1.0


@dataclass
class Guardian:
    process: subprocess.Popen[bytes]
    pipe: int  # the write end: open while serve lives

    def stop(self) -> None:
        """Close the pipe (serve stopped cleanly, or the guardian died and is being replaced) and let it end."""
        if self.pipe >= 0:
            os.close(self.pipe)
            self.pipe = -1
        try:
            self.process.wait(STOP_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_guardian(mark: str, run_dir: Path) -> Guardian:
    """The guardian of the serve whose record is in `run_dir` and whose processes carry `mark`."""
    read_end, write_end = os.pipe()  # neither is inherited by what serve starts later
    try:
        command = [sys.executable, "-m", "leadersboard.cli.guardian", str(run_dir), str(os.getpid())]
        process = subprocess.Popen(command, stdin=read_end, env={"PATH": os.defpath, MARK_ENV: mark},
                                   start_new_session=True)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return Guardian(process, write_end)


def main() -> None:
    mark, run_dir, serve_pid = os.environ[MARK_ENV], Path(sys.argv[1]), int(sys.argv[2])
    sys.stdin.buffer.read()  # returns when serve's end of the pipe closes
    _let_exiting_processes_go(mark, serve_pid)
    record = read_record(run_dir)
    groups = record.get("groups", {}) if record.get("mark") == mark else {}  # not a newer serve's record
    killed = end_leftovers(mark, groups, spare=(serve_pid,))  # serve itself may be exiting cleanly right now
    if killed:
        with contextlib.suppress(OSError):  # serve's output may be gone with it
            print(f"guardian: serve (pid {serve_pid}) is gone; killed {killed} of its process groups and processes",
                  file=sys.stderr, flush=True)


def _let_exiting_processes_go(mark: str, serve_pid: int) -> None:
    """A moment for what ends with serve by itself (multiprocessing's forkserver leaves when serve's
    end of its socket closes), so that only what would really outlive serve is killed and reported."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while marked_processes(mark, spare=(serve_pid,)) and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    main()
