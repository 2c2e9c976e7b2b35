"""The tracking server behind the MLflow gateway, reached over HTTP with one pooled client.

Answers are streamed through as they come (artifacts can be large); only headers that describe the
content cross, both ways: the caller's credentials and cookies never reach MLflow, and MLflow's own
challenges and cookies never reach the caller.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx

from .mlflow_refusal import Refusal
from .tls import client_tls

log = logging.getLogger(__name__)

# Short: a read that takes longer is stuck. The read timeout is per chunk, so a large artifact streams.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
REQUEST_HEADERS = frozenset({b"accept", b"accept-language", b"content-type", b"range", b"if-range",
                             b"if-none-match", b"if-modified-since", b"user-agent"})
# Hop-by-hop headers are the connection's, not the content's; uvicorn writes its own date and server.
RESPONSE_HEADERS_DROPPED = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"te", b"trailer",
                                      b"transfer-encoding", b"upgrade", b"www-authenticate", b"set-cookie",
                                      b"date", b"server"})
SAFE_IN_PATH = "/:@!$&'()*+,;=-._~"  # RFC 3986 pchar and '/': everything else is percent-encoded


class Upstream:
    """The tracking server at `base_url` (http or https; a path prefix is kept)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        # trust_env=False: no proxy from the environment stands between us and our own server.
        self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False,
                                         verify=client_tls())

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None, "the gateway is not started"
        return self._client

    def url(self, path: str) -> str:
        """The upstream URL of a decoded `path`, encoded again so MLflow decodes exactly what was checked."""
        return self.base_url + quote(path, safe=SAFE_IN_PATH)

    async def get_json(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        """A small JSON read for the gateway's own checks; None when MLflow knows no such thing."""
        try:
            answer = await self.client.get(self.url(path), params=params)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        if answer.status_code in (400, 404):
            return None
        if answer.status_code != 200:
            log.warning("the tracking server answered %s to %s", answer.status_code, path)
            raise Refusal(502, "The tracking server behind the gateway failed to answer")
        try:
            document = answer.json()
        except ValueError as exc:
            raise Refusal(502, "The tracking server behind the gateway answered what is not JSON") from exc
        return document if isinstance(document, dict) else None

    @asynccontextmanager
    async def open(self, method: str, path: str, query: str, headers: list[tuple[bytes, bytes]],
                   body: bytes | AsyncIterator[bytes], writes: bool = False) -> AsyncIterator[httpx.Response]:
        """MLflow's answer to the request, its body not read yet (the caller streams it). `writes`: a
        worker host's request, whose body streams through with its declared length (artifact uploads)."""
        allowed = REQUEST_HEADERS | {b"content-length"} if writes else REQUEST_HEADERS
        sent = [(k, v) for k, v in headers if k in allowed]
        # Asked for as the caller asked: the body passes through encoded as MLflow encoded it.
        sent.append((b"accept-encoding", _header(headers, b"accept-encoding") or b"identity"))
        url = self.url(path) + (f"?{query}" if query else "")
        request = self.client.build_request(method, url, headers=sent, content=body or None)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        try:
            yield response
        finally:
            await response.aclose()


def response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in RESPONSE_HEADERS_DROPPED]


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((v for k, v in headers if k == name), None)


def _unreachable(exc: httpx.HTTPError) -> Refusal:
    log.warning("the tracking server did not answer: %s", type(exc).__name__)
    if isinstance(exc, httpx.TimeoutException):
        return Refusal(504, "The tracking server behind the gateway did not answer in time")
    return Refusal(502, "The tracking server behind the gateway does not answer")
