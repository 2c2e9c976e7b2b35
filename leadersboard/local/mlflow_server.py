"""Starting a private MLflow tracking server (for `serve` without a configured MLflow, tests and benchmarks).

The settings are the fast, light ones measured in FACTS.md: no job-execution processes
(`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`, else ~12 processes and ~3 GB), gunicorn with two workers
(uvicorn's keep-alive adds ~42 ms to every request) forked from a master that imported MLflow's app
once (`--preload`: 13 s of CPU per start instead of 17; MLflow opens its store at the first request,
so no connection is shared across the fork), warning-level logs, no telemetry lookup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .ports import free_port, listening

# A fresh database is migrated before the first /health answer: ~12 s measured, more on a busy CI machine.
DEFAULT_START_TIMEOUT = 90.0

SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


class MlflowStartError(Exception):
    """The MLflow server exited or did not answer /health in time."""


@dataclass
class MlflowServer:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "mlflow.log"

    def wait_healthy(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Return once `/health` answers; raise MlflowStartError with the tail of the log if the server
        exits first or does not answer within `timeout` seconds."""
        wait_for_health(self.url, self.log_path, self.process.poll, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and every process it started (gunicorn master and workers share its group)."""
        if self.process.poll() is not None:
            return
        # start_new_session made the server a group leader, so its pid is the group id.
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # Workers can outlive a master that exited on SIGTERM; leave nothing behind.
        _signal_group(self.process.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def backend_store_uri(directory: Path) -> str:
    """The sqlite store `start_mlflow` uses for `directory` (benchmarks fill it before starting a server)."""
    return f"sqlite:///{(directory / 'mlflow.db').resolve()}"


def start_mlflow(directory: Path, port: int | None = None, *, host: str = "127.0.0.1",
                 workers: int = 2, timeout: float = DEFAULT_START_TIMEOUT) -> MlflowServer:
    """An MLflow tracking server with its sqlite database and artifact folder in `directory`.

    Returns once `/health` answers; raises MlflowStartError with the tail of the server log otherwise.
    """
    server = launch_mlflow(directory, port, host=host, workers=workers)
    try:
        server.wait_healthy(timeout)
    except BaseException:
        server.stop()
        raise
    return server


def launch_mlflow(directory: Path, port: int | None = None, *, host: str = "127.0.0.1",
                  workers: int = 2) -> MlflowServer:
    """`start_mlflow` without the wait: the server process is started, `wait_healthy` waits for its
    first answer (seconds of imports and migrations, which the caller may spend on other work)."""
    directory.mkdir(parents=True, exist_ok=True)
    artifacts = directory / "artifacts"
    artifacts.mkdir(exist_ok=True)
    if port and listening(host, port):  # else /health could be answered by that server, not ours
        raise MlflowStartError(f"port {port} is in use: another server listens there")
    port = port or free_port()
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", host, "--port", str(port),
        "--backend-store-uri", backend_store_uri(directory),
        "--artifacts-destination", str(artifacts.resolve()),
        "--workers", str(workers),
        # gunicorn's default 30 s worker timeout would kill a worker proxying a large artifact upload.
        "--gunicorn-opts", "--log-level warning --timeout 600 --preload",
    ]
    env = {**os.environ, **SERVER_ENV}
    # A tracking URI in our own environment must not leak into the server's configuration.
    env.pop("MLFLOW_TRACKING_URI", None)
    log_path = directory / "mlflow.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env, cwd=directory, start_new_session=True)
    return MlflowServer(process, host, port, directory)


def wait_for_health(url: str, log_path: Path, exit_code: Callable[[], int | None], timeout: float) -> None:
    """Return once `url`/health answers; raise MlflowStartError with the tail of the log if the server
    exits first (`exit_code` answers) or does not answer within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    health = f"{url}/health"
    while True:
        try:
            with urllib.request.urlopen(health, timeout=2) as response:  # noqa: S310 (our own http URL)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        code = exit_code()
        if code is not None:
            raise MlflowStartError(f"the MLflow server exited with code {code} "
                                   f"before answering at {url}:\n{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise MlflowStartError(f"the MLflow server did not answer {health} within {timeout:.0f} s:\n"
                                   f"{_log_tail(log_path)}")
        time.sleep(0.2)


def _log_tail(path: Path, limit: int = 2000) -> str:
    if not path.exists():
        return "(no log)"
    return path.read_text(errors="replace")[-limit:] or "(empty log)"
