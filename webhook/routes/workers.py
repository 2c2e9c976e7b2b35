"""GET /workers/join: what a worker host on another machine needs to run jobs, for its worker token.

A worker started with `leadersboard worker --server URL --token T` asks here for the queue (the
server's Redis URL, password included: the token holder is trusted with it), where to record results
(the MLflow gateway, which takes the worker token for writes), the instance's job limits and resource
classes, and the version of each data set, which the worker compares with its own copies. The code
of a job comes over git with the same token."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Request

from ..deps import CurrentWorker, DependenciesUp, ServiceDep

router = APIRouter(tags=["workers"])
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@router.get("/workers/join", dependencies=[DependenciesUp])
async def join(request: Request, service: ServiceDep, caller: CurrentWorker) -> dict[str, Any]:
    settings = service.settings
    host = request.url.hostname or "127.0.0.1"
    return {
        "worker": caller.name,
        "redis_url": settings.worker_redis_url or _as_reached(service.redis_url, host),
        "mlflow_tracking_uri": settings.worker_mlflow_url or f"{request.url.scheme}://{_netloc(host)}:"
                                                              f"{settings.mlflow_port}",
        "queue_name": settings.queue_name,
        "limits": asdict(settings.limits),
        "resource_classes": settings.resource_classes.to_config(),
        "datasets": {name: dataset.version for name, dataset in sorted(settings.current_datasets().items())},
    }


def _as_reached(url: str, host: str) -> str:
    """A URL of a service on this host as a worker elsewhere reaches it: a loopback host becomes the
    host the worker reached the API by (the operator binds Redis there, or sets worker_redis_url)."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK or host in LOOPBACK:
        return url
    credentials = parts.netloc.rpartition("@")[0]
    port = f":{parts.port}" if parts.port else ""
    netloc = (credentials + "@" if credentials else "") + _netloc(host) + port
    return urlunsplit(parts._replace(netloc=netloc))


def _netloc(host: str) -> str:
    return f"[{host}]" if ":" in host else host
