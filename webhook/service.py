"""What the running service holds: clients made at start-up, closed at shutdown."""

from __future__ import annotations

import asyncio

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis

from leadersboard.intake import Intake
from leadersboard.jobs import JobStore
from leadersboard.reconcile import Reconciler
from leadersboard.settings import Settings
from leadersboard.users import UserStore

from .git_http import PushRegistry


class Service:
    def __init__(self, settings: Settings, expect_workers: bool = False) -> None:
        if not settings.redis_url or not settings.mlflow_tracking_uri:
            raise ValueError("the service needs a Redis URL and an MLflow tracking URI ('leadersboard serve' "
                             "starts both when none is configured)")
        self.settings = settings
        self.redis_url = settings.redis_url
        self.expect_workers = expect_workers
        self.users = UserStore(settings.db_path)
        self.jobs = JobStore(settings.mlflow_tracking_uri, settings.db_path)
        self.pushes = PushRegistry()
        self._redis: Redis | None = None
        self._queue: ArqRedis | None = None
        self._intake: Intake | None = None
        self._reconciler: Reconciler | None = None

    async def start(self) -> None:
        self._redis = Redis.from_url(self.redis_url)
        self._queue = await create_pool(RedisSettings.from_dsn(self.redis_url),
                                        default_queue_name=self.settings.queue_name)
        self._intake = Intake(self.settings, self._redis, self._queue)
        self._reconciler = Reconciler(self.settings, self._redis, self._queue, self._intake, self.jobs)

    async def stop(self) -> None:
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
    def intake(self) -> Intake:
        assert self._intake is not None, "service not started"
        return self._intake

    @property
    def reconciler(self) -> Reconciler:
        assert self._reconciler is not None, "service not started"
        return self._reconciler

    async def authenticate(self, name: str | None, token: str) -> str | None:
        return await asyncio.to_thread(self.users.authenticate, token, name)

    async def push_ended(self, push_id: str) -> None:
        await self.intake.settle(push_id)
