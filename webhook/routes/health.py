"""GET /healthz: the state of Redis, MLflow and the workers."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from leadersboard.contract import HEALTH_CHECK_SUFFIX

from ..deps import ServiceDep
from ..service import Service

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(service: ServiceDep) -> JSONResponse:
    """200 when Redis, MLflow (and the workers, when this node runs some) answer; 503 otherwise."""
    redis_ok, mlflow_ok = await asyncio.gather(_redis_ok(service), asyncio.to_thread(_mlflow_ok, service))
    workers_ok = redis_ok and bool(await service.redis.exists(service.settings.queue_name + HEALTH_CHECK_SUFFIX))
    body: dict[str, Any] = {
        "redis": "ok" if redis_ok else "down",
        "mlflow": "ok" if mlflow_ok else "down",
        "workers": "ok" if workers_ok else ("down" if service.expect_workers else "none seen"),
    }
    healthy = redis_ok and mlflow_ok and (workers_ok or not service.expect_workers)
    body["status"] = "ok" if healthy else "degraded"
    return JSONResponse(body, status_code=200 if healthy else 503)


async def _redis_ok(service: Service) -> bool:
    try:
        return bool(await service.redis.ping())
    except Exception:  # any failure to answer means down
        return False


def _mlflow_ok(service: Service) -> bool:
    uri = service.settings.mlflow_tracking_uri or ""
    if not uri.startswith("http"):
        return True  # a local store has no server to be down
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=3) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False
