"""The web form (port 8501): submit a folder and follow one's jobs, in English and Japanese.

The page is rendered here (jinja2, autoescaped) and its script calls the participant API on the
page's own origin, under /api: the same route handlers as on the API port, run by the same service
in the same process. So the browser never talks to another origin (no CORS to configure), and the
web form meets exactly the rules and limits of the API and of a push. The token stays in the tab's
sessionStorage and travels only in the Authorization header: no cookie (nothing for CSRF to ride
on), never in a URL. The script writes every server-supplied text with textContent, and the
Content-Security-Policy allows no inline script, so even a missed escape would not run.
"""

from __future__ import annotations

from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.types import Receive, Scope, Send

from leadersboard.rules import DEFAULT_CONFIG, DEFAULT_ENTRYPOINT
from leadersboard.templates import WEB_DIR

from .errors import install_error_handlers
from .routes import jobs, submissions
from .service import Service
from .web_text import LANGUAGES, TEXT, pick_language

STATIC = {"web.js": "text/javascript", "web.css": "text/css"}
REFRESH_SECONDS = 5
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                 b"img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def create_web_app(service: Service) -> Any:
    """The web form's ASGI app; `service` is the API's, started and stopped by the API's lifespan."""
    web = FastAPI(title="LeadersBoard web form", docs_url=None, redoc_url=None, openapi_url=None)
    web.state.service = service
    for module in (submissions, jobs):
        web.include_router(module.router, prefix="/api")
    install_error_handlers(web)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(WEB_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined)

    @web.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request, lang: str | None = None) -> HTMLResponse:
        """The form and the job list, in the language asked for (?lang=en|ja) or preferred."""
        chosen = pick_language(lang, request.headers.get("accept-language"))
        text = TEXT[chosen]
        html = env.get_template("index.html").render(
            lang=chosen, t=text, languages=LANGUAGES, script_text={**text, "refresh_seconds": REFRESH_SECONDS},
            default_entrypoint=DEFAULT_ENTRYPOINT, default_config=DEFAULT_CONFIG,
            resource_classes=service.settings.resource_classes.names,
            default_class=service.settings.resource_classes.default)
        return HTMLResponse(html, headers={"Vary": "Accept-Language", "Cache-Control": "no-store"})

    @web.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def static(name: str) -> Any:
        """The page's script and style sheet (a fixed list: no path from the request reaches the disk)."""
        if name not in STATIC:
            return JSONResponse({"detail": "Not found"}, status_code=404)
        return FileResponse(WEB_DIR / "static" / name, media_type=STATIC[name])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await web(scope, receive, with_headers)  # type: ignore[arg-type]  # ASGI's scope is a dict either way

    return app
