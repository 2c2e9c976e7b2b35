"""GET /metrics: the platform in Prometheus' text format, for operators (an admin's Bearer token).

Jobs and queues say who submits what, so a participant (403) or an anonymous scrape (401) gets
nothing; a Prometheus server scrapes with an admin's token (`authorization` in its scrape config)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from ..deps import CurrentUser, ServiceDep
from ..metrics_text import CONTENT_TYPE, render
from ..platform_metrics import collect

router = APIRouter(tags=["operators"])


@router.get("/metrics")
async def metrics(service: ServiceDep, caller: CurrentUser) -> Response:
    if not caller.admin:
        raise HTTPException(403, "Only admins read /metrics")
    return Response(render(await collect(service)), media_type=CONTENT_TYPE)
