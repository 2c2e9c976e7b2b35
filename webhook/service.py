"""What the running service holds: clients made at start-up, closed at shutdown, and the upkeep
tasks that run beside the requests."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool, Redis

from leadersboard.admission import Admission
from leadersboard.job_index import JobIndex
from leadersboard.jobs import JobStore
from leadersboard.periodic import end_tasks, every
from leadersboard.settings import Settings
from leadersboard.users import Caller, UserStore
from leadersboard.worker_tokens import WorkerTokenStore, is_worker_token

from .dependencies import Dependencies
from .git_http import PushRegistry
from .intake.intake import Intake

T = TypeVar("T")
REDIS_TIMEOUT = 2.0  # seconds, for connecting and for every answer
# The service's MLflow calls (it only reads runs and writes a job's first tags): short, retried once.
MLFLOW_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                     "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
DRAIN_SECONDS = 10.0  # at shutdown, for hand-overs under way
TASKS_END_SECONDS = 10.0  # at shutdown, for the upkeep tasks to end once cancelled
MLFLOW_THREADS, AUTH_THREADS, LOCAL_THREADS = 16, 4, 8

# Upkeep run beside the requests for as long as the service runs (`serve` adds the job reconciler).
Background = Callable[["Service"], Coroutine[Any, Any, None]]
# What `serve` started and keeps alive (Redis, MLflow, workers): name -> state, pid, restarts, last exit.
Supervision = Callable[[], dict[str, dict[str, Any]]]


class Service:
    def __init__(self, settings: Settings, expect_workers: bool = False, reconcile: bool = True,
                 background: Sequence[Background] = (), supervision: Supervision | None = None) -> None:
        if not settings.redis_url or not settings.mlflow_tracking_uri:
            raise ValueError("the service needs a Redis URL and an MLflow tracking URI ('leadersboard serve' "
                             "starts both when none is configured)")
        self.settings = settings
        self.redis_url = settings.redis_url
        self.tracking_uri = settings.mlflow_tracking_uri
        self.expect_workers = expect_workers
        self.supervision = supervision
        self.users = UserStore(settings.db_path)
        self.worker_tokens = WorkerTokenStore(settings.db_path)
        self.job_index = JobIndex(settings.db_path)
        self.pushes = PushRegistry()
        self._background = [*background] + ([_reconcile_pushes] if reconcile else [])
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Redis | None = None
        self._queue: ArqRedis | None = None
        self._jobs: JobStore | None = None
        self._intake: Intake | None = None
        self._dependencies: Dependencies | None = None
        self._auth_pool: ThreadPoolExecutor | None = None
        self._local_pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        # Short timeouts everywhere: a dead Redis or MLflow makes a request fail fast (503), never hang.
        for name, value in MLFLOW_CLIENT_ENV.items():
            os.environ[name] = value
        self._redis = Redis.from_url(self.redis_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
        self._queue = ArqRedis(ConnectionPool.from_url(self.redis_url, socket_timeout=REDIS_TIMEOUT,
                                                       socket_connect_timeout=REDIS_TIMEOUT),
                               default_queue_name=self.settings.queue_name)
        self._jobs = JobStore(self.tracking_uri, self.settings.db_path, Admission(self._redis, self.settings.limits))
        # Pools of their own: signing in and the repository's work never wait behind MLflow calls,
        # which take the loop's default pool.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(MLFLOW_THREADS, "mlflow"))
        self._auth_pool = ThreadPoolExecutor(AUTH_THREADS, "auth")
        self._local_pool = ThreadPoolExecutor(LOCAL_THREADS, "local")
        self._intake = Intake(self.settings, self._redis, self._queue, self._jobs, local=self._local_pool,
                              worker_reports=lambda: self.dependencies.state.sandboxes)
        self._dependencies = Dependencies(self.redis_url, self.tracking_uri, self.settings.queue_name,
                                          self.settings.health_check_ms / 1000)
        await self._dependencies.refresh()
        self._tasks = [asyncio.create_task(task(self), name=getattr(task, "__name__", "upkeep"))
                       for task in self._background]
        self._tasks.append(asyncio.create_task(self._dependencies.watch(), name="dependency checks"))
        self._tasks.append(asyncio.create_task(self._intake.checker.warm(), name="rule checker warm-up"))

    async def stop(self) -> None:
        await end_tasks(self._tasks, TASKS_END_SECONDS)
        if self._intake is not None:
            with contextlib.suppress(TimeoutError):  # hand-overs waiting on a dead MLflow: the reconciler's
                await asyncio.wait_for(self._intake.drain(), DRAIN_SECONDS)
            self._intake.checker.close()
        if self._dependencies is not None:
            await self._dependencies.close()
        for pool in (self._auth_pool, self._local_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        if self._queue is not None:
            await self._queue.aclose(close_connection_pool=True)  # a pool it was given: closed explicitly
        if self._redis is not None:
            await self._redis.aclose()

    @property
    def dependencies(self) -> Dependencies:
        assert self._dependencies is not None, "service not started"
        return self._dependencies

    @property
    def redis(self) -> Redis:
        assert self._redis is not None, "service not started"
        return self._redis

    @property
    def queue(self) -> ArqRedis:
        assert self._queue is not None, "service not started"
        return self._queue

    @property
    def jobs(self) -> JobStore:
        assert self._jobs is not None, "service not started"
        return self._jobs

    @property
    def intake(self) -> Intake:
        assert self._intake is not None, "service not started"
        return self._intake

    async def authenticate(self, name: str | None, token: str, workers: bool = False) -> Caller | None:
        """The user `token` belongs to; with `workers`, also the worker host (git and MLflow take both)."""
        loop = asyncio.get_running_loop()
        if workers and is_worker_token(token):
            worker = await loop.run_in_executor(self._auth_pool, self.worker_tokens.authenticate, token, name)
            return Caller(worker, worker=True) if worker is not None else None
        return await loop.run_in_executor(self._auth_pool, self.users.authenticate, token, name)

    async def authenticate_member(self, name: str | None, token: str) -> Caller | None:
        return await self.authenticate(name, token, workers=True)

    async def read_index(self, read: Callable[..., T], *args: Any) -> T:
        """A read of the instance database off the loop, beside signing in (never behind MLflow calls)."""
        return await asyncio.get_running_loop().run_in_executor(self._auth_pool, read, *args)

    async def run_owner(self, run_id: str) -> str | None:
        """The user whose job made MLflow run `run_id` (the job index), or None."""
        return await asyncio.get_running_loop().run_in_executor(self._auth_pool, self.jobs.run_owner, run_id)

    async def push_ended(self, push_id: str) -> None:
        await self.intake.settle(push_id)


async def _reconcile_pushes(service: Service) -> None:
    """Pushes nobody settled and submissions never handed over get their jobs."""
    await every(service.settings.runner.reconcile_seconds, service.intake.reconcile, "push reconciler")
