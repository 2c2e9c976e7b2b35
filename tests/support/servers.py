"""`leadersboard serve` as a participant meets it: a real process on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from leadersboard.local.redis_server import RedisServer

from .instances import LEADERSBOARD, Instance
from .ports import fresh_port

SERVER_START_SECONDS = 180  # a loaded machine (CI) may need minutes
SERVER_STOP_SECONDS = 60  # "within seconds" on a quiet machine; a loaded one (CI) needs more


@dataclass
class Server:
    instance: Instance
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    web_port: int = 0  # the web form's
    mlflow_port: int = 0  # the MLflow gateway's

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def git_url(self) -> str:
        return f"{self.base_url}/git/submissions.git"

    def url_for(self, user: str | None, token: str | None = None) -> str:
        """The remote URL for `user` (credentials in the URL; None: anonymous)."""
        if user is None:
            return self.git_url
        token = self.instance.tokens[user] if token is None else token
        return f"http://{user}:{token}@127.0.0.1:{self.port}/git/submissions.git"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, as an operator stops it: a clean exit (0) within seconds, and its port closed."""
        if not terminate(self.process, SERVER_STOP_SECONDS, serve=True):
            raise AssertionError(f"leadersboard serve ignored SIGTERM:\n{self.log()}")
        assert self.process.returncode == 0, f"serve exited {self.process.returncode}:\n{self.log()}"
        for port in (p for p in (self.port, self.web_port, self.mlflow_port) if p):
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after stop"


def terminate(process: subprocess.Popen[bytes], seconds: float, serve: bool = False) -> bool:
    """SIGTERM `process` and wait; False when it was still running `seconds` later, and was killed then.
    A `serve` that ignored it is first asked where it hangs (SIGUSR1: it writes that to its log)."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(seconds)
        return True
    except subprocess.TimeoutExpired:
        if serve:
            process.send_signal(signal.SIGUSR1)
            time.sleep(2)
        process.kill()
        process.wait()
        return False


def launch_server(inst: Instance, redis_url: str | None, workers: int = 0) -> Server:
    """`leadersboard serve` on a free port; returns once /healthz answers 200.

    Without `redis_url`, serve starts its own Redis. With no workers (the default here) nothing
    consumes the queue, so admitted jobs stay pending."""
    assert LEADERSBOARD
    port, web_port, mlflow_port = fresh_port(), fresh_port(), fresh_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")}
    env.update(LEADERSBOARD_HOME=str(inst.home), MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1",
               # Jobs are MLflow runs: a local SQLite tracking store, no tracking server needed.
               MLFLOW_TRACKING_URI=inst.mlflow_uri)
    if redis_url is not None:
        env["LEADERSBOARD_REDIS_URL"] = redis_url
    log_path = inst.home / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([LEADERSBOARD, "serve", "--api-port", str(port), "--web-port", str(web_port),
                                    "--mlflow-port", str(mlflow_port), "--workers", str(workers)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server(inst, process, port, log_path, web_port, mlflow_port)
    deadline = time.monotonic() + SERVER_START_SECONDS
    with httpx.Client(timeout=2) as client:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"leadersboard serve exited {process.returncode}:\n{server.log()}")
            try:
                if client.get(f"{server.base_url}/healthz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"leadersboard serve did not answer /healthz:\n{server.log()}")
            time.sleep(0.1)


@contextmanager
def running_server(inst: Instance, redis_server: RedisServer) -> Iterator[Server]:
    server = launch_server(inst, redis_server.url)
    try:
        yield server
    finally:
        server.stop()
