"""Errors as JSON `{"detail": ...}` on every app of the service: 400 for a malformed request, 503
(with `Retry-After`) when Redis or MLflow does not answer, 500 without a traceback (the log has it)."""

from __future__ import annotations

import logging

import requests
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from mlflow.exceptions import MlflowException
from redis.exceptions import RedisError

from .dependencies import RETRY_AFTER_SECONDS

log = logging.getLogger(__name__)


def unavailable(what: str) -> HTTPException:
    """503 for a dependency that is down: nothing was changed, and when to try again."""
    return HTTPException(503, f"LeadersBoard cannot do this right now: {what} is not answering (it is being "
                              f"restarted); nothing was changed, try again in a minute",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RedisError)
    async def redis_down(_: Request, exc: RedisError) -> JSONResponse:
        log.warning("Redis did not answer: %s", exc)
        return _answer(unavailable("Redis"))

    @app.exception_handler(MlflowException)
    async def mlflow_down(request: Request, exc: MlflowException) -> JSONResponse:
        if isinstance(exc.__cause__, requests.RequestException) or "failed with exception" in exc.message:
            log.warning("MLflow did not answer: %s", exc.message[:300])
            return _answer(unavailable("MLflow"))
        return await server_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"Malformed request: {problems}"}, status_code=400)

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse({"detail": "Internal server error; the operators have the details"}, status_code=500)


def _answer(exc: HTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
