"""What the running service holds: clients made at start-up, closed at shutdown, and the upkeep
tasks that run beside the requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis

from leadersboard.admission import Admission
from leadersboard.jobs import JobStore
from leadersboard.periodic import every
from leadersboard.settings import Settings
from leadersboard.users import Caller, UserStore

from .git_http import PushRegistry
from .intake import Intake

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
        self.pushes = PushRegistry()
        self._background = [*background] + ([_reconcile_pushes] if reconcile else [])
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Redis | None = None
        self._queue: ArqRedis | None = None
        self._jobs: JobStore | None = None
        self._intake: Intake | None = None

    async def start(self) -> None:
        self._redis = Redis.from_url(self.redis_url)
        self._queue = await create_pool(RedisSettings.from_dsn(self.redis_url),
                                        default_queue_name=self.settings.queue_name)
        self._jobs = JobStore(self.tracking_uri, self.settings.db_path, Admission(self._redis, self.settings.limits))
        self._intake = Intake(self.settings, self._redis, self._queue, self._jobs)
        self._tasks = [asyncio.create_task(task(self)) for task in self._background]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._intake is not None:
            await self._intake.drain()
        if self._queue is not None:
            await self._queue.aclose()
        if self._redis is not None:
            await self._redis.aclose()

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

    async def authenticate(self, name: str | None, token: str) -> Caller | None:
        return await asyncio.to_thread(self.users.authenticate, token, name)

    async def run_owner(self, run_id: str) -> str | None:
        """The user whose job made MLflow run `run_id` (the job index), or None."""
        return await asyncio.to_thread(self.jobs.run_owner, run_id)

    async def push_ended(self, push_id: str) -> None:
        await self.intake.settle(push_id)


async def _reconcile_pushes(service: Service) -> None:
    """Pushes nobody settled and submissions never handed over get their jobs."""
    await every(service.settings.runner.reconcile_seconds, service.intake.reconcile, "push reconciler")
