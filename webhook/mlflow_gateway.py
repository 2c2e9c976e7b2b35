"""The MLflow gateway (port 5010): MLflow's UI and reads for participants, signed in, and no writes.

The tracking server the platform writes to listens where only the platform reaches it; this raw
ASGI app, a third socket of the service's server, stands in front of it. A request passes when
its caller signs in (HTTP Basic with user name and API token, as git; or a Bearer token), it is one
of MLflow's reads (mlflow_rules.py: an allowlist, so anything else is refused with 403), and the
caller may read it (mlflow_access.py: a run's artifacts are its owner's and admins'). It is then
sent on without the caller's credentials and MLflow's answer streams back. A worker host, signed in
with its worker token, is the one caller whose writes pass: it records the jobs it runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from starlette.types import Message, Receive, Scope, Send

from leadersboard.users import Caller

from .auth import basic_credentials
from .mlflow_access import AccessCheck, Checked, is_plain_path
from .mlflow_landing import HEADERS as LANDING_HEADERS
from .mlflow_landing import PAGE as LANDING_PAGE
from .mlflow_landing import is_landing
from .mlflow_owners import RunOwners
from .mlflow_refusal import READ_ONLY, Refusal, sign_in_needed
from .mlflow_rules import find_read
from .mlflow_upstream import Upstream, response_headers

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # reads send small bodies (a search, a GraphQL query); artifacts are never uploaded here
CHUNK = 64 * 1024

Authenticate = Callable[[str | None, str], Awaitable[Caller | None]]
RunOwner = Callable[[str], Awaitable[str | None]]


class MlflowGateway:
    """The gateway to the tracking server at `tracking_uri`; None or a local store: nothing to front (503)."""

    def __init__(self, tracking_uri: str | None, authenticate: Authenticate, run_owner: RunOwner) -> None:
        served = bool(tracking_uri) and str(tracking_uri).startswith(("http://", "https://"))
        self.upstream = Upstream(str(tracking_uri)) if served else None
        self.authenticate = authenticate
        self.access = AccessCheck(RunOwners(run_owner, self.upstream)) if self.upstream else None

    async def start(self) -> None:
        if self.upstream is not None:
            await self.upstream.start()

    async def stop(self) -> None:
        if self.upstream is not None:
            await self.upstream.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # MLflow serves none
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._serve(scope, receive, tracked)
        except Refusal as refusal:
            if not started:
                await _json(send, refusal)
        except Exception:
            log.exception("the MLflow gateway failed on %s %s", scope["method"], scope["path"])
            if not started:  # else the body stays short: the server drops the connection
                await _json(send, Refusal(500, "Internal server error; the operators have the details"))

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        caller = await self._caller(scope)
        if self.upstream is None or self.access is None:
            raise Refusal(503, "No MLflow server behind this gateway: the platform tracks jobs in a local store")
        if caller.worker:  # a worker host records its jobs: MLflow's whole API, bodies streamed (artifacts)
            stream = None if method in ("GET", "HEAD") else _stream_body(receive)
            await self._forward(scope, send, path, Checked(query, b""), stream, writes=True)
            return
        if is_landing(method, path, query):
            await send({"type": "http.response.start", "status": 200, "headers": LANDING_HEADERS})
            await send({"type": "http.response.body", "body": LANDING_PAGE if method == "GET" else b""})
            return
        if path != "/" and not is_plain_path(path):
            raise Refusal(400, "Malformed path: empty, '.' or '..' segments")
        match = find_read(method, path)
        if match is None:
            raise Refusal(403, READ_ONLY)
        # A GET's body is never forwarded: MLflow reads the parameters of a GET without a query
        # string from its body, which would let it name another run than the one checked.
        body = b"" if method in ("GET", "HEAD") else await _read_body(scope, receive)
        checked = await self.access.check(caller, match, query, body)
        await self._forward(scope, send, path, checked)

    async def _caller(self, scope: Scope) -> Caller:
        header = _header(scope, b"authorization") or ""
        if header[:7].lower() == "bearer ":
            name, token = None, header[7:].strip()
        else:
            credentials = basic_credentials(header)
            if credentials is None:
                raise sign_in_needed("Sign in with your user name and API token")
            name, token = credentials
        caller = await self.authenticate(name, token) if token else None
        if caller is None:
            raise sign_in_needed("Invalid or revoked token")
        return caller

    async def _forward(self, scope: Scope, send: Send, path: str, checked: Checked,
                       stream: AsyncIterator[bytes] | None = None, writes: bool = False) -> None:
        assert self.upstream is not None
        headers = list(scope["headers"])
        if checked.content_type is not None:
            headers = [(k, v) for k, v in headers if k != b"content-type"] + [(b"content-type", checked.content_type)]
        body = stream if stream is not None else checked.body
        async with self.upstream.open(scope["method"], path, checked.query, headers, body, writes) as response:
            if response.status_code == 401:  # MLflow wants credentials of its own: the operator's to fix
                log.warning("the tracking server asks the gateway for credentials (401)")
                raise Refusal(502, "The tracking server behind the gateway refused it")
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": response_headers(response)})
            try:
                async for chunk in response.aiter_raw(CHUNK):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as exc:
                # Too late for an error answer: leaving the body short makes the server drop the connection.
                log.warning("the tracking server broke off an answer (%s)", type(exc).__name__)
                return
            await send({"type": "http.response.body", "body": b""})


async def _json(send: Send, refusal: Refusal) -> None:
    body = json.dumps({"detail": refusal.detail}).encode()
    await send({"type": "http.response.start", "status": refusal.status,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                            (b"content-length", str(len(body)).encode()), *refusal.headers]})
    await send({"type": "http.response.body", "body": body})


async def _stream_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise Refusal(400, "The request ended before its body")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise Refusal(413, f"Request body over {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise Refusal(400, "The request ended before its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Refusal(413, f"Request body over {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
