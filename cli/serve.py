"""`leadersboard serve`: the whole platform on one machine, stopped cleanly on Ctrl-C / SIGTERM.

Starts what is not configured (Redis, the MLflow tracking server, private on 127.0.0.1), N worker
processes kept alive by a supervisor thread, and in this process one server with three sockets: the
API + git, the web form, and the read-only MLflow gateway that participants reach.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit, urlunsplit

import uvicorn

from leadersboard import db
from leadersboard.local.mlflow_server import start_mlflow
from leadersboard.local.redis_server import start_redis
from leadersboard.runner.reconcile import JobReconciler
from leadersboard.settings import Settings
from leadersboard.webhook.app import create_app
from leadersboard.webhook.service import MLFLOW_CLIENT_ENV, Service

log = logging.getLogger(__name__)
RESTART_PAUSE_SECONDS = 1.0


@dataclass
class WorkerPool:
    """Worker processes, restarted when one dies (a job it ran is ended by the reconciler)."""

    settings: Settings
    count: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.processes = [self._spawn(i) for i in range(self.count)]
        threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True).start()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        # Not the service's short MLflow timeouts: a worker uploads a job's artifacts.
        env = {**{k: v for k, v in os.environ.items() if k not in MLFLOW_CLIENT_ENV},
               "LEADERSBOARD_HOME": str(self.settings.home), "LEADERSBOARD_REDIS_URL": self.settings.redis_url or "",
               "MLFLOW_TRACKING_URI": self.settings.mlflow_tracking_uri or ""}
        command = [sys.executable, "-m", "leadersboard.cli", "worker", "--gpu", str(index)]
        return subprocess.Popen(command, env=env, start_new_session=True)

    def _supervise(self) -> None:
        while not self.stopping.wait(RESTART_PAUSE_SECONDS):
            for index, proc in enumerate(self.processes):
                if proc.poll() is not None and not self.stopping.is_set():
                    log.warning("worker %d (pid %d) exited with %s; starting a new one", index, proc.pid,
                                proc.returncode)
                    self.processes[index] = self._spawn(index)

    def stop(self) -> None:
        self.stopping.set()
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def listen(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn; a clear message when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class ServeError(Exception):
    """`serve` cannot start as configured (a port taken, say)."""


async def reconcile_jobs(service: Service) -> None:
    """The job reconciler runs beside the service, on this host (it removes what dead workers left here)."""
    await JobReconciler(service.settings, service.redis, service.queue, service.jobs).forever()


def _without_credentials(uri: str | None) -> str:
    """A URI fit to print: a user name or password in it is left out."""
    parts = urlsplit(uri or "")
    if parts.username is None and parts.password is None:
        return uri or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(settings: Settings, workers: int = 1) -> None:
    db.create_schema(settings.db_path)  # an instance made by an older version gains what it lacks
    stops: list[tuple[str, object]] = []
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal under the handler it found:
    # with the default one the process would die there, before `finally` stops what we started.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    sockets: list[socket.socket] = []
    try:
        # One server, three sockets: the web form and the MLflow gateway share the API's process, service
        # and shutdown. Bound first, so that a port in use stops serve before it starts anything.
        for port in (settings.api_port, settings.web_port, settings.mlflow_port):
            sockets.append(listen(settings.api_host, port))
        if not settings.redis_url:
            redis = start_redis(settings.run_dir / "redis")
            stops.append(("redis-server", redis))
            settings = replace(settings, redis_url=redis.url)
        if not settings.mlflow_tracking_uri:
            # Private: only this host reaches it (the platform writes there); participants get the gateway.
            print("starting the MLflow tracking server on 127.0.0.1 ...", flush=True)
            mlflow = start_mlflow(settings.mlflow_dir)
            stops.append(("mlflow", mlflow))
            settings = replace(settings, mlflow_tracking_uri=mlflow.url)
        pool = WorkerPool(settings, workers)
        pool.start()
        stops.append(("workers", pool))
        app = create_app(settings, expect_workers=workers > 0, background=[reconcile_jobs])
        config = uvicorn.Config(app, host=settings.api_host,
                                port=settings.api_port, log_level="warning", lifespan="on")
        print(f"LeadersBoard on {settings.base_url}: git {settings.base_url}/git/submissions.git, "
              f"leaderboard {settings.base_url}/leaderboard/, web form http://{settings.api_host}:"
              f"{settings.web_port}/, MLflow (read-only) http://{settings.api_host}:{settings.mlflow_port}/ "
              f"in front of the tracking server {_without_credentials(settings.mlflow_tracking_uri)}; "
              f"{workers} worker(s); Ctrl-C stops", flush=True)
        uvicorn.Server(config).run(sockets=sockets)  # returns after a graceful shutdown on SIGINT/SIGTERM
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        for sock in sockets:
            sock.close()
        for name, part in reversed(stops):
            log.info("stopping %s", name)
            part.stop()  # type: ignore[attr-defined]
