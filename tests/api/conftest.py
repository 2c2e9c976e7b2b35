"""The service's ASGI app run in this process (FastAPI's TestClient, on httpx) against the session's
real Redis and real MLflow server: an instance made in-process, no `serve`, no worker, no git client.
Jobs stay pending here; what a worker does is the end-to-end tier's."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from leadersboard.local.redis_server import RedisServer

from support.api import Api, open_api
from support.shared import SessionMlflow


@pytest.fixture
def make_api(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
             mlflow_server: SessionMlflow) -> Iterator[Callable[..., Api]]:
    apis: list[Api] = []

    def make(users: int = 2, **limits: int) -> Api:
        apis.append(open_api(tmp_path_factory.mktemp("api"), redis_server.url, mlflow_server.url, users, **limits))
        return apis[-1]

    yield make
    for made in apis:
        made.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
