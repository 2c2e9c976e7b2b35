"""Dependencies shared by the routes: the service, and the caller from their Bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from leadersboard.users import Caller
from leadersboard.worker_tokens import is_worker_token

from .errors import unavailable
from .service import Service


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def current_user(request: Request, service: ServiceDep) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "Missing token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": 'Bearer realm="LeadersBoard"'})
    caller = await service.authenticate(None, token.strip())
    if caller is None and is_worker_token(token.strip()):
        raise HTTPException(401, "This is a worker token: it joins a worker host (leadersboard worker --server), "
                                 "the API takes a user's token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if caller is None:
        raise HTTPException(401, "Invalid or revoked token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return caller


CurrentUser = Annotated[Caller, Depends(current_user)]


async def current_worker(request: Request, service: ServiceDep) -> Caller:
    """A worker host, by its worker token (Bearer); a user's token is refused (403)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "Missing token: send 'Authorization: Bearer <worker token>'",
                            headers={"WWW-Authenticate": 'Bearer realm="LeadersBoard"'})
    caller = await service.authenticate(None, token.strip(), workers=True)
    if caller is None:
        raise HTTPException(401, "Invalid or revoked worker token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if not caller.worker:
        raise HTTPException(403, "Only worker hosts join: an operator makes a worker token with "
                                 "'leadersboard worker-token add NAME'")
    return caller


CurrentWorker = Annotated[Caller, Depends(current_worker)]


async def dependencies_up(service: ServiceDep) -> None:
    """Refuse at once (503) what needs Redis and MLflow while one of them is down: nothing half-done."""
    down = service.dependencies.state.unavailable()
    if down:
        raise unavailable(down)


DependenciesUp = Depends(dependencies_up)
