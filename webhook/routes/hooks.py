"""POST /internal/hooks/{name}: where our git hooks hand a push over (not part of the public API)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from mlflow.exceptions import MlflowException
from redis.exceptions import RedisError

from ..deps import ServiceDep

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)


@router.post("/internal/hooks/{hook}")
async def hook(hook: str, request: Request, service: ServiceDep) -> PlainTextResponse:
    """Only a push in flight knows its random push id, so nobody else can call this."""
    push_id = request.headers.get("x-leadersboard-push-id", "")
    user = service.pushes.user(push_id)
    if user is None:
        return PlainTextResponse("LeadersBoard: push over HTTP to the LeadersBoard server.\n", 403)
    body = (await request.body()).decode("utf-8", errors="replace")
    if hook == "pre-receive":
        options = [value.encode("latin-1").decode("utf-8", errors="replace")
                   for value in request.headers.getlist("x-leadersboard-push-option")]
        quarantine = request.headers.get("x-leadersboard-quarantine") or None
        down = service.dependencies.state.unavailable()
        try:
            if down:
                return PlainTextResponse(_unavailable(down), 403)
            reply = await service.intake.pre_receive(user, push_id, body, quarantine, options)
        except (RedisError, MlflowException) as exc:
            log.warning("push refused, a dependency failed: %s", exc)
            return PlainTextResponse(_unavailable("Redis" if isinstance(exc, RedisError) else "MLflow"), 403)
        return PlainTextResponse(reply.text, 200 if reply.ok else 403)
    if hook == "post-receive":
        refs = [line.split()[2] for line in body.splitlines() if len(line.split()) == 3]
        try:
            lines = await service.intake.settle(push_id, refs)
        except (RedisError, MlflowException) as exc:  # landed all the same: the reconciler settles it later
            log.warning("a landed push could not be settled now: %s", exc)
            lines = ["LeadersBoard: your push landed; its jobs are created as soon as the service recovers "
                     "(a minute or so): see GET /jobs"]
        return PlainTextResponse("".join(line + "\n" for line in lines))
    return PlainTextResponse("unknown hook\n", 404)


def _unavailable(what: str) -> str:
    return (f"LeadersBoard: push rejected, nothing was changed: {what} is not answering right now (it is being "
            "restarted). Push again in a minute.\n")
