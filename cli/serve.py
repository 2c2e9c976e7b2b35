"""`leadersboard serve`: the whole platform on one machine, stopped cleanly on Ctrl-C / SIGTERM.

Holds the instance's lock (one serve per instance), starts what is not configured (Redis, the MLflow
tracking server, private on 127.0.0.1) and N worker processes, all kept alive by a supervisor and
ended by a guardian should serve die without cleaning up, and runs in this process one server with
three sockets: the API + git, the web form, and the read-only MLflow gateway that participants reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, replace
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import uvicorn

from leadersboard.local.mlflow_server import start_mlflow
from leadersboard.local.ports import free_port
from leadersboard.local.redis_server import start_redis
from leadersboard.runner.reconcile import JobReconciler
from leadersboard.settings import Settings
from leadersboard.site_generator import SiteBuilder, rebuild_on_requests
from leadersboard.webhook.app import create_app
from leadersboard.webhook.service import MLFLOW_CLIENT_ENV, Service

from .guardian import start_guardian
from .instance import upgrade
from .instance_lock import InstanceBusy, InstanceLock
from .leftovers import MARK_ENV, end_leftovers, new_mark
from .supervisor import Supervisor

log = logging.getLogger(__name__)
STATE_DUMP = "state dump"
LISTEN_BACKLOG = 2048  # uvicorn's default (it listens again with its own when it starts)
STACK_DEPTH = 12  # frames per asyncio task in a SIGUSR1 dump
# Open connections (a log followed live, a push under way) get this long once serve is told to stop.
SHUTDOWN_GRACE_SECONDS = 15
HAND_BACK_SECONDS = 60  # after its grace, a stopping worker hands its job back: MLflow writes, the job's processes


@dataclass
class WorkerProcess:
    """A `leadersboard worker` that serve started (a process group of its own)."""

    process: subprocess.Popen[bytes]
    grace_seconds: int

    @classmethod
    def start(cls, settings: Settings, index: int) -> WorkerProcess:
        return cls.spawn(settings, str(index), {"LEADERSBOARD_REDIS_URL": settings.redis_url or "",
                                                "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri or ""})

    @classmethod
    def spawn(cls, settings: Settings, gpu: str, env: dict[str, str], options: list[str] | None = None
              ) -> WorkerProcess:
        """`leadersboard worker --gpu GPU [options]` on `settings.home`, with `env` added (secrets go there,
        not in argv)."""
        # Not the service's short MLflow timeouts: a worker uploads a job's artifacts.
        full = {**{k: v for k, v in os.environ.items() if k not in MLFLOW_CLIENT_ENV},
                "LEADERSBOARD_HOME": str(settings.home), **env}
        command = [sys.executable, "-m", "leadersboard.cli", "worker", "--gpu", gpu, *(options or [])]
        return cls(subprocess.Popen(command, env=full, start_new_session=True), settings.runner.stop_grace_seconds)

    def stop(self) -> None:
        """SIGTERM: the worker lets its job finish for its grace, then hands it back; SIGKILL if it is still there."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(self.grace_seconds + HAND_BACK_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("worker (pid %d) did not stop in time; killing it", self.process.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket for uvicorn; a clear message when the port is taken.

    It listens at once, not when uvicorn starts: a socket bound with SO_REUSEADDR and not yet listening
    holds nothing, so another process could take the port while Redis and MLflow start. Connections
    made meanwhile wait in the backlog and are answered once the app is up.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class ServeError(Exception):
    """`serve` cannot start as configured (a port taken, say)."""


async def rebuild_site_for_remote_workers(service: Service) -> None:
    """Workers on other hosts cannot build this host's site: they ask over Redis, and this builds it."""
    settings = service.settings
    site = SiteBuilder(service.tracking_uri, settings.db_path, settings.site_dir, settings.site_cache_path)
    await site.start()
    try:
        await rebuild_on_requests(service.redis, site)
    finally:
        await site.stop()


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


def _dump_state(signum: int, frame: object) -> None:
    """SIGUSR1 (`kill -USR1 PID`): where every thread and asyncio task is, written to the log; for a
    serve that hangs or will not stop. It changes nothing."""
    print(f"{STATE_DUMP} (SIGUSR1): every thread, then every asyncio task", file=sys.stderr, flush=True)
    faulthandler.dump_traceback(sys.stderr, all_threads=True)
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())  # the handler runs on the loop's thread
    except RuntimeError:  # not serving yet, or any more
        tasks = set()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        task.print_stack(limit=STACK_DEPTH, file=sys.stderr)
    print(f"end of the {STATE_DUMP}: {len(tasks)} task(s)", file=sys.stderr, flush=True)  # a reader knows it is whole


def serve(settings: Settings, workers: int = 1) -> None:
    try:
        lock = InstanceLock.acquire(settings.run_dir)
    except InstanceBusy as exc:
        raise ServeError(str(exc)) from exc
    try:
        if lock.left_by and lock.left_by.get("mark"):
            _clean_after(lock.left_by)
        upgrade(settings)  # an instance made by an older version gains what it lacks (tables, git settings)
        mark = new_mark()
        os.environ[MARK_ENV] = mark  # inherited by every process serve starts, and by theirs (leftovers.py)
        lock.hold(mark)
        _serve(settings, workers, lock)
    finally:
        lock.release()  # `_serve` stopped what it started, however it ended (and the guardian ends the rest)


def _clean_after(record: dict[str, Any]) -> None:
    """The previous serve of this instance did not stop cleanly: end whatever it left running."""
    killed = end_leftovers(str(record["mark"]), record.get("groups") or {})
    print(f"the previous serve of this instance (pid {record.get('pid')}) did not stop cleanly; "
          f"ended {killed} of the process groups and processes it had left running", flush=True)


def _serve(settings: Settings, workers: int, lock: InstanceLock) -> None:
    supervisor = Supervisor(on_start=lock.started)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal under the handler it found:
    # with the default one the process would die there, before `finally` stops what we started.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGUSR1, _dump_state)
    sockets: list[socket.socket] = []
    try:
        # One server, three sockets: the web form and the MLflow gateway share the API's process, service
        # and shutdown. Listening first, so that a port in use stops serve before it starts anything.
        for port in (settings.api_port, settings.web_port, settings.mlflow_port):
            sockets.append(listen(settings.api_host, port))
        mark, run_dir = lock.record["mark"], settings.run_dir
        supervisor.keep("guardian", lambda: start_guardian(mark, run_dir))
        if not settings.redis_url:
            # Started again on the same port, with the same password and append-only file: clients reconnect.
            redis_dir, redis_port, password = settings.run_dir / "redis", free_port(), secrets.token_urlsafe(24)
            redis = supervisor.keep("redis-server", lambda: start_redis(redis_dir, port=redis_port, password=password))
            settings = replace(settings, redis_url=redis.url)
        if not settings.mlflow_tracking_uri:
            # Private: only this host reaches it (the platform writes there); participants get the gateway.
            print("starting the MLflow tracking server on 127.0.0.1 ...", flush=True)
            mlflow_dir, mlflow_port = settings.mlflow_dir, free_port()
            mlflow = supervisor.keep("mlflow", lambda: start_mlflow(mlflow_dir, port=mlflow_port))
            settings = replace(settings, mlflow_tracking_uri=mlflow.url)
        served = settings  # with the URLs of what was started
        supervisor.keep_together([(f"worker {index}", partial(WorkerProcess.start, served, index))
                                  for index in range(workers)])
        app = create_app(settings, expect_workers=workers > 0,
                         background=[reconcile_jobs, rebuild_site_for_remote_workers], supervision=supervisor.status)
        config = uvicorn.Config(app, host=settings.api_host,
                                port=settings.api_port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS)
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
        log.info("stopping the workers, MLflow, Redis")
        supervisor.stop()
