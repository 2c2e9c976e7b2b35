"""The service's ASGI application: git smart-HTTP under /git, everything else through FastAPI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from leadersboard import __version__
from leadersboard.settings import Settings

from .git_http import GitHttpApp, Receive, Scope, Send
from .routes import health, hooks, jobs
from .service import Service

log = logging.getLogger(__name__)


def create_app(settings: Settings, expect_workers: bool = False, reconcile: bool = True) -> Any:
    """The ASGI callable `serve` runs."""
    service = Service(settings, expect_workers=expect_workers)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        reconciler = asyncio.create_task(service.reconciler.forever()) if reconcile else None
        try:
            yield
        finally:
            if reconciler is not None:
                reconciler.cancel()
            await service.stop()

    api = FastAPI(title="LeadersBoard", version=__version__, lifespan=lifespan)
    api.state.service = service
    for module in (health, hooks, jobs):
        api.include_router(module.router)
    # The published site is a link swapped atomically; StaticFiles resolves it on every request.
    api.mount("/leaderboard", StaticFiles(directory=settings.site_dir, html=True, check_dir=False), name="leaderboard")

    @api.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"Malformed request: {problems}"}, status_code=400)

    @api.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse({"detail": "Internal server error; the operators have the details"}, status_code=500)

    git = GitHttpApp(settings.home, service.authenticate, service.pushes, service.push_ended)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/git/"):
            await git(scope, receive, send)
        else:
            await api(scope, receive, send)  # type: ignore[arg-type]  # ASGI's scope is a dict either way

    return app
