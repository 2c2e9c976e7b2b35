"""The service's ASGI application: git smart-HTTP under /git, everything else through FastAPI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from redis.asyncio import Redis

from leadersboard.intake import Intake
from leadersboard.settings import Settings
from leadersboard.users import UserStore

from .git_http import GitHttpApp, PushRegistry, Receive, Scope, Send

log = logging.getLogger(__name__)
RECONCILE_EVERY_SECONDS = 30.0


class Service:
    """What the running service holds: made at start-up, closed at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.users = UserStore(settings.db_path)
        self.pushes = PushRegistry()
        self.redis: Redis | None = None
        self.queue: ArqRedis | None = None
        self.intake: Intake | None = None

    async def start(self) -> None:
        if not self.settings.redis_url:
            raise RuntimeError("No Redis configured: set LEADERSBOARD_REDIS_URL or run 'leadersboard serve'.")
        self.redis = Redis.from_url(self.settings.redis_url)
        self.queue = await create_pool(RedisSettings.from_dsn(self.settings.redis_url),
                                       default_queue_name=self.settings.queue_name)
        self.intake = Intake(self.settings, self.redis, self.queue)

    async def stop(self) -> None:
        if self.queue is not None:
            await self.queue.aclose()
        if self.redis is not None:
            await self.redis.aclose()

    async def authenticate(self, name: str, token: str) -> str | None:
        return await asyncio.to_thread(self.users.authenticate, token, name)

    async def push_ended(self, push_id: str) -> None:
        if self.intake is not None:
            await self.intake.settle(push_id)

    async def reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_EVERY_SECONDS)
            try:
                if self.intake is not None:
                    await self.intake.reconcile()
            except Exception:  # a passing fault (Redis restarting); the next round retries
                log.exception("reconcile round failed")


def create_app(settings: Settings) -> Any:
    """The ASGI callable `serve` runs."""
    service = Service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        reconciler = asyncio.create_task(service.reconcile_forever())
        try:
            yield
        finally:
            reconciler.cancel()
            await service.stop()

    api = FastAPI(title="LeadersBoard", version="0.1.0", lifespan=lifespan)
    api.state.service = service

    @api.get("/healthz")
    async def healthz() -> JSONResponse:
        """Whether the service and Redis answer."""
        redis_ok = False
        if service.redis is not None:
            try:
                redis_ok = bool(await service.redis.ping())
            except Exception:  # any failure to answer means down
                redis_ok = False
        body = {"status": "ok" if redis_ok else "degraded", "redis": "ok" if redis_ok else "down"}
        return JSONResponse(body, status_code=200 if redis_ok else 503)

    @api.post("/internal/hooks/{hook}", include_in_schema=False)
    async def hook(hook: str, request: Request) -> PlainTextResponse:
        """Called by our git hooks only: the push id proves the call comes from a push in flight."""
        push_id = request.headers.get("x-leadersboard-push-id", "")
        user = service.pushes.user(push_id)
        if user is None or service.intake is None:
            return PlainTextResponse("LeadersBoard: push over HTTP to the LeadersBoard server.\n", 403)
        body = (await request.body()).decode("utf-8", errors="replace")
        if hook == "pre-receive":
            options = [v.encode("latin-1").decode("utf-8", errors="replace")
                       for v in request.headers.getlist("x-leadersboard-push-option")]
            quarantine = request.headers.get("x-leadersboard-quarantine") or None
            reply = await service.intake.pre_receive(user, push_id, body, quarantine, options)
            return PlainTextResponse(reply.text, 200 if reply.ok else 403)
        if hook == "post-receive":
            refs = [line.split()[2] for line in body.splitlines() if len(line.split()) == 3]
            lines = await service.intake.settle(push_id, refs)
            return PlainTextResponse("".join(line + "\n" for line in lines))
        return PlainTextResponse("unknown hook\n", 404)

    git = GitHttpApp(settings.home, service.authenticate, service.pushes, service.push_ended)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/git/"):
            await git(scope, receive, send)
        else:
            await api(scope, receive, send)  # type: ignore[arg-type]  # ASGI's scope is a dict either way

    app.api = api  # type: ignore[attr-defined]
    return app
