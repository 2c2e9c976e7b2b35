"""GET /healthz: the state of Redis, MLflow and the workers, and how the workers confine jobs."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from leadersboard.contract import HEALTH_CHECK_SUFFIX, sandbox_key

from ..deps import ServiceDep
from ..service import Service

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(service: ServiceDep) -> JSONResponse:
    """200 when Redis, MLflow (and the workers, when this node runs some) answer; 503 otherwise.
    Unconfined jobs are a fact to report (`sandbox`), not an outage."""
    redis_ok, mlflow_ok = await asyncio.gather(_redis_ok(service), asyncio.to_thread(_mlflow_ok, service))
    workers_ok = redis_ok and bool(await service.redis.exists(service.settings.queue_name + HEALTH_CHECK_SUFFIX))
    body: dict[str, Any] = {
        "redis": "ok" if redis_ok else "down",
        "mlflow": "ok" if mlflow_ok else "down",
        "workers": "ok" if workers_ok else ("down" if service.expect_workers else "none seen"),
    }
    if redis_ok:
        body.update(await _sandboxes(service))
    if service.supervision is not None:  # what `serve` keeps alive, and how often it had to start it again
        body["supervised"] = service.supervision()
    healthy = redis_ok and mlflow_ok and (workers_ok or not service.expect_workers)
    body["status"] = "ok" if healthy else "degraded"
    return JSONResponse(body, status_code=200 if healthy else 503)


SANDBOX_LEVELS = ("unconfined", "partial", "confined")  # the worst a live worker reports is the answer


async def _sandboxes(service: Service) -> dict[str, Any]:
    """`sandbox`: the least confinement any live worker gives its jobs ("none seen" without workers);
    `sandboxes`: each worker's, in its own words."""
    reports: dict[str, Any] = {}
    try:
        async for key in service.redis.scan_iter(match=sandbox_key("*")):
            raw = await service.redis.get(key)
            if raw is not None:
                reports[key.decode().removeprefix(sandbox_key(""))] = json.loads(raw)
    except Exception:  # Redis stopped answering meanwhile: the redis field already says so
        return {}
    levels = [report.get("level") for report in reports.values()]
    worst = next((level for level in SANDBOX_LEVELS if level in levels), "none seen")
    return {"sandbox": worst, "sandboxes": {worker: f"{r.get('executor')} executor, {r.get('level')} "
                                                    f"({r.get('summary')})" for worker, r in sorted(reports.items())}}


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
