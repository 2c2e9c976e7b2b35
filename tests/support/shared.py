"""What a test run starts once for all of its processes. Under pytest-xdist every worker is a process
of its own, and the session's MLflow server (13 s of CPU to start), the MLflow template store and
MLflow's route table (seconds of MLflow's imports each) would otherwise be made once per worker.

The run's first process (the only one, or xdist's controller) makes a folder for the run and hands it
to its workers (`tests/conftest.py`). The first process to need a thing starts it under the folder's
lock and writes down where it is; the others read that. The first process ends whatever is left when
the run ends. A command's result is a file the command itself puts in place (written, then renamed)
once it succeeded, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadersboard.local.mlflow_server import DEFAULT_START_TIMEOUT, launch_mlflow, wait_for_health

_FOLDER: list[Path] = []


def new_run_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="leadersboard-tests-run-"))


def use_run_folder(folder: Path) -> None:
    _FOLDER[:] = [folder]


def run_folder() -> Path:
    assert _FOLDER, "tests/conftest.py sets the run's folder when pytest starts"
    return _FOLDER[0]


@contextlib.contextmanager
def _claimed(name: str) -> Iterator[Path]:
    """The run's lock on `name`, held while a process looks for its record and starts it if missing."""
    with (run_folder() / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield run_folder() / f"{name}.started"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _record(path: Path, **values: Any) -> None:
    path.write_text(json.dumps(values), encoding="utf-8")


def _read(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


def alive(pid: int) -> bool:
    """Whether a process of this pid exists (a zombie counts until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def end_run(folder: Path) -> None:
    """End every process group the run's processes recorded, remove what they kept elsewhere (the
    MLflow store in memory), then the folder."""
    for record in folder.glob("*.started"):
        values = _read(record)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(values["group"], signal.SIGKILL)
        if "store" in values:
            shutil.rmtree(values["store"], ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


# -------------------------------------------------------------------------------------------- mlflow


@dataclass(frozen=True)
class SessionMlflow:
    """The run's MLflow tracking server, started by whichever process needed it first."""

    url: str
    group: int
    log_path: Path

    def wait_healthy(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        wait_for_health(self.url, self.log_path, lambda: None if alive(self.group) else -1, timeout)


def session_mlflow() -> SessionMlflow:
    """The run's MLflow server; launched now (not waited for) when no process of the run has yet. Its
    store is in memory where the host has a tmpfs: every MLflow write commits to SQLite, and the fsyncs
    on this disk cost the fast tiers ~8 s (measured)."""
    with _claimed("mlflow") as record:
        if not record.exists():
            in_memory = Path("/dev/shm")
            store = in_memory if in_memory.is_dir() and os.access(in_memory, os.W_OK) else run_folder()
            folder = Path(tempfile.mkdtemp(prefix="leadersboard-tests-mlflow-", dir=store))
            server = launch_mlflow(folder)
            threading.Thread(target=server.process.wait, daemon=True).start()  # reaped, so others see it end
            _record(record, url=server.url, group=server.process.pid, log=str(server.log_path), store=str(folder))
        values = _read(record)
    return SessionMlflow(values["url"], values["group"], Path(values["log"]))


# ------------------------------------------------------------------------------------------ commands


class SharedCommand:
    """A command run once per test run whose result is the file `{result}` it writes (its last
    argument): started by the first process that asks, read by all."""

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None,
                 drop: Sequence[str] = (), timeout: float = 180) -> None:
        self.name, self.args, self.env, self.drop, self.timeout = name, list(args), dict(env or {}), drop, timeout

    def start(self) -> Path:
        """Start it unless a process of the run did; the path its result will have."""
        with _claimed(self.name) as record:
            if not record.exists():
                result = run_folder() / self.name
                env = {**os.environ, **self.env}
                for name in self.drop:
                    env.pop(name, None)
                with (run_folder() / f"{self.name}.err").open("wb") as errors:
                    process = subprocess.Popen([*self.args, str(result)], stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=errors, env=env,
                                               start_new_session=True)
                threading.Thread(target=process.wait, daemon=True).start()  # reaped, so others see it end
                _record(record, result=str(result), group=process.pid)
            return Path(_read(record)["result"])

    def result(self) -> Path:
        """The file it wrote, once it is there (started now if no process of the run had)."""
        result = self.start()
        group = _read(run_folder() / f"{self.name}.started")["group"]
        deadline = time.monotonic() + self.timeout
        while not result.exists():
            errors = (run_folder() / f"{self.name}.err").read_text(encoding="utf-8", errors="replace")
            assert alive(group) or result.exists(), f"{self.name} failed:\n{errors[-3000:]}"
            assert time.monotonic() < deadline, f"{self.name} took over {self.timeout} s:\n{errors[-3000:]}"
            time.sleep(0.05)
        return result
