"""What the service depends on, watched in the background: Redis, MLflow and the workers.

Checked every second (`server.health_check_ms`) with short timeouts, so that no request waits to learn
that one of them is down: `/healthz` answers from the last check, and a push or an upload while Redis
or MLflow is down is refused at once (503) instead of hanging or half-happening. A part is down after
two missed answers in a row: one slow answer on a busy host does not refuse anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis.asyncio import Redis

from leadersboard.contract import HEALTH_CHECK_SUFFIX, sandbox_key

from .tls import client_tls

CHECK_TIMEOUT_SECONDS = 1.0
FASTEST_CHECK_SECONDS = 0.1  # `server.health_check_ms: 0` must not turn the watcher into a busy loop
DOWN_AFTER_MISSES = 2  # one slow answer on a busy host is not an outage; two checks in a row are
RETRY_AFTER_SECONDS = 10  # what a refused push or upload is told


@dataclass
class DependencyState:
    redis: bool = False
    mlflow: bool = False
    workers: bool = False
    sandboxes: dict[str, Any] = field(default_factory=dict)  # worker -> its confinement report
    checked_at: float = 0.0

    def unavailable(self) -> str | None:
        """What is down that a submission needs ("Redis", "MLflow"), or None."""
        if not self.redis:
            return "Redis"
        if not self.mlflow:
            return "MLflow"
        return None


class Dependencies:
    def __init__(self, redis_url: str, tracking_uri: str, queue_name: str, every: float = 1.0) -> None:
        """`every`: seconds between checks (`server.health_check_ms`)."""
        # A client of its own: its timeouts are the check's, and a check never cancels a command midway
        # (a cancelled command leaves its connection unusable).
        self.redis = Redis.from_url(redis_url, socket_timeout=CHECK_TIMEOUT_SECONDS,
                                    socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
        self.tracking_uri = tracking_uri
        self.queue_name = queue_name
        self.every = max(FASTEST_CHECK_SECONDS, every)
        self.state = DependencyState()
        self._http = httpx.AsyncClient(timeout=CHECK_TIMEOUT_SECONDS, verify=client_tls())
        self._missed: dict[str, int] = {}

    async def refresh(self) -> DependencyState:
        redis_answered, mlflow_answered = await asyncio.gather(self._redis_ok(), self._mlflow_ok())
        redis_ok, mlflow_ok = self._judge("redis", redis_answered), self._judge("mlflow", mlflow_answered)
        workers, sandboxes = await self._workers() if redis_answered else self._last_workers(redis_ok)
        self.state = DependencyState(redis_ok, mlflow_ok, workers, sandboxes, time.time())
        return self.state

    def _judge(self, name: str, answered: bool) -> bool:
        """Up when it answered this check, or answered the one before (down until a first answer)."""
        missed = 0 if answered else self._missed.get(name, DOWN_AFTER_MISSES) + 1
        self._missed[name] = missed
        return missed < DOWN_AFTER_MISSES

    def _last_workers(self, redis_ok: bool) -> tuple[bool, dict[str, Any]]:
        """While Redis counts as up after one missed answer, the workers as last seen."""
        return (self.state.workers, self.state.sandboxes) if redis_ok else (False, {})

    async def watch(self) -> None:
        """Refresh every `every` seconds for as long as the service runs."""
        while True:
            with contextlib.suppress(Exception):  # a failed check is a "down", never the watcher's end
                await self.refresh()
            await asyncio.sleep(self.every)

    async def close(self) -> None:
        await self._http.aclose()
        await self.redis.aclose()

    async def _redis_ok(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:  # any failure to answer in time means down
            return False

    async def _mlflow_ok(self) -> bool:
        if not self.tracking_uri.startswith("http"):
            return True  # a local store has no server to be down
        try:
            answer = await self._http.get(self.tracking_uri.rstrip("/") + "/health")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    async def _workers(self) -> tuple[bool, dict[str, Any]]:
        """Whether a worker's health key is fresh, and each live worker's confinement report."""
        try:
            alive = bool(await self.redis.exists(self.queue_name + HEALTH_CHECK_SUFFIX))
            reports: dict[str, Any] = {}
            async for key in self.redis.scan_iter(match=sandbox_key("*")):
                raw = await self.redis.get(key)
                if raw is not None:
                    reports[key.decode().removeprefix(sandbox_key(""))] = json.loads(raw)
        except Exception:  # too slow or gone: the Redis check says which
            return False, {}
        return alive, reports
