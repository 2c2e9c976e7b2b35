"""GET /healthz: the state of Redis, MLflow and the workers, and how the workers confine jobs.

It answers from the service's last check (`dependencies.py`, every second), never waiting on a
dependency: within milliseconds whatever is down."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import ServiceDep

router = APIRouter(tags=["health"])
SANDBOX_LEVELS = ("unconfined", "partial", "confined")  # the worst a live worker reports is the answer


@router.get("/healthz")
async def healthz(service: ServiceDep) -> JSONResponse:
    """200 when Redis, MLflow (and the workers, when this node runs some) answer; 503 otherwise.
    Unconfined jobs are a fact to report (`sandbox`), not an outage."""
    state = service.dependencies.state
    body: dict[str, Any] = {
        "redis": "ok" if state.redis else "down",
        "mlflow": "ok" if state.mlflow else "down",
        "workers": "ok" if state.workers else ("down" if service.expect_workers else "none seen"),
    }
    if state.redis:
        body.update(_sandboxes(state.sandboxes))
    if service.supervision is not None:  # what `serve` keeps alive, and how often it had to start it again
        body["supervised"] = service.supervision()
    healthy = state.redis and state.mlflow and (state.workers or not service.expect_workers)
    body["status"] = "ok" if healthy else "degraded"
    return JSONResponse(body, status_code=200 if healthy else 503)


def _sandboxes(reports: dict[str, Any]) -> dict[str, Any]:
    """`sandbox`: the least confinement any live worker gives its jobs ("none seen" without workers);
    `sandboxes`: each worker's, in its own words."""
    levels = [report.get("level") for report in reports.values()]
    worst = next((level for level in SANDBOX_LEVELS if level in levels), "none seen")
    return {"sandbox": worst, "sandboxes": {worker: f"{r.get('executor')} executor, {r.get('level')} "
                                                    f"({r.get('summary')})" for worker, r in sorted(reports.items())}}
