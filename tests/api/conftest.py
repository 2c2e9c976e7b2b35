"""The service's ASGI app run in this process (FastAPI's TestClient, on httpx) against the session's
real Redis and real MLflow server: an instance made in-process, no `serve`, no worker, no git client.
Jobs stay pending here; what a worker does is the end-to-end tier's."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from leadersboard.cli import instance
from leadersboard.local.datagen import generate_dataset
from leadersboard.local.mlflow_server import MlflowServer
from leadersboard.local.redis_server import RedisServer
from leadersboard.settings import Limits, Settings
from leadersboard.users import UserStore
from leadersboard.webhook.app import create_app

from support.api import Api


@pytest.fixture
def make_api(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
             mlflow_server: MlflowServer) -> Iterator[Callable[..., Api]]:
    clients: list[TestClient] = []

    def make(users: int = 2, **limits: int) -> Api:
        home = tmp_path_factory.mktemp("api") / "home"
        settings = Settings.load(home, environ={"LEADERSBOARD_REDIS_URL": redis_server.url,
                                                "MLFLOW_TRACKING_URI": mlflow_server.url})
        settings = settings.with_overrides(limits=Limits(**limits))
        instance.init(settings)
        data = home.parent / "visa"
        generate_dataset(data, "visa", ("pcb1",), normal=2, anomalous=1, size=32)
        settings = instance.add_dataset(settings, "visa", data)
        store = UserStore(settings.db_path)
        tokens = {}
        for _ in range(users):
            name = "u" + uuid.uuid4().hex[:10]  # the MLflow server is shared: names keep tests apart
            tokens[name] = store.add(name)
        client = TestClient(create_app(settings, reconcile=False), raise_server_exceptions=False)
        client.__enter__()  # runs the app's lifespan: the service starts
        clients.append(client)
        return Api(settings, client, tokens)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
