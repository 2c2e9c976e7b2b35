"""Dependencies shared by the routes: the service, and the caller from their Bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from leadersboard.users import Caller

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
    if caller is None:
        raise HTTPException(401, "Invalid or revoked token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return caller


CurrentUser = Annotated[Caller, Depends(current_user)]


async def dependencies_up(service: ServiceDep) -> None:
    """Refuse at once (503) what needs Redis and MLflow while one of them is down: nothing half-done."""
    down = service.dependencies.state.unavailable()
    if down:
        raise unavailable(down)


DependenciesUp = Depends(dependencies_up)
