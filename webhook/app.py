"""The service's ASGI application: git smart-HTTP under /git, everything else through FastAPI; on the
web port (a second socket of the same server), the web form; on the MLflow port (a third), the
read-only gateway to the tracking server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from leadersboard import __version__
from leadersboard.settings import Settings

from .errors import install_error_handlers
from .git_http import GitHttpApp
from .mlflow_gateway import MlflowGateway
from .routes import health, hooks, jobs, metrics, submissions, workers
from .service import Background, Service, Supervision
from .web import create_web_app


def create_app(settings: Settings, expect_workers: bool = False, reconcile: bool = True,
               background: Sequence[Background] = (), supervision: Supervision | None = None) -> Any:
    """The ASGI callable `serve` runs; `background` tasks run beside it while it serves; `supervision`
    says how what `serve` started is doing (for /healthz)."""
    service = Service(settings, expect_workers=expect_workers, reconcile=reconcile, background=background,
                      supervision=supervision)
    # Participants read MLflow only through here; the platform's own clients use the tracking URI directly.
    mlflow = MlflowGateway(settings.mlflow_tracking_uri, service.authenticate_member, service.run_owner)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        await mlflow.start()
        try:
            yield
        finally:
            await mlflow.stop()
            await service.stop()

    api = FastAPI(title="LeadersBoard", version=__version__, lifespan=lifespan)
    api.state.service = service
    for module in (health, hooks, jobs, metrics, submissions, workers):
        api.include_router(module.router)
    # The published site is a link swapped atomically; StaticFiles resolves it on every request.
    api.mount("/leaderboard", StaticFiles(directory=settings.site_dir, html=True, check_dir=False), name="leaderboard")
    install_error_handlers(api)

    git = GitHttpApp(settings.home, service.authenticate_member, service.pushes, service.push_ended,
                     code_public=lambda: settings.current_access().code_visibility == "public")
    # The web form shares this process, its service and its lifespan; it answers on its own port.
    web = create_web_app(service)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        port = (scope.get("server") or ("", 0))[1] if scope["type"] in ("http", "websocket") else None
        if port == settings.web_port:
            await web(scope, receive, send)
        elif port == settings.mlflow_port:
            await mlflow(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith("/git/"):
            await git(scope, receive, send)
        else:
            await api(scope, receive, send)

    return app

