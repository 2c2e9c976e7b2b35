"""One TLS context for the service's HTTP clients (to MLflow, which may be served over https): making
one reads the system's CA bundle, ~45 ms measured, and the service makes its clients at every start."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_tls() -> ssl.SSLContext:
    """Made on first use and shared: an SSLContext is safe to share between clients and threads."""
    return httpx.create_ssl_context()
