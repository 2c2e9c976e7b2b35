"""A dependency down: Redis stopped for real, MLflow not there. `/healthz` answers at once and says
which; a submission or a job is refused with 503 and Retry-After, and nothing is changed; when the
dependency is back, everything works again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadersboard.local.redis_server import RedisServer, start_redis

from support.api import Api, open_api
from support.ports import fresh_port
from support.shared import SessionMlflow


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path / "redis", port=fresh_port(), appendonly=False)  # restarted on it
    yield server
    server.stop()


def wait_for(api: Api, field: str, wanted: str, timeout: float = 10) -> dict[str, str]:
    """The health answer once `field` says `wanted` (the service checks every 0.2 s here)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = api.request("GET", "/healthz")
        body: dict[str, str] = answer.json()
        if body[field] == wanted:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_redis_down_then_back(tmp_path: Path, own_redis: RedisServer, mlflow_server: SessionMlflow) -> None:
    api = open_api(tmp_path / "api", own_redis.url, mlflow_server.url)
    try:
        user = next(iter(api.tokens))
        own_redis.stop()
        assert wait_for(api, "redis", "down")["status"] == "degraded"
        assert api.request("GET", "/healthz").status_code == 503
        for answer in (api.upload(user), api.request("POST", "/jobs", user, json={"submission_id": "a" * 32})):
            assert answer.status_code == 503 and answer.headers["retry-after"] == "10", answer.text
            assert "Redis is not answering" in answer.json()["detail"] and "nothing was changed" in answer.json()[
                "detail"]
        assert api.refs() == {}

        restarted = start_redis(tmp_path / "redis", port=own_redis.port, password=own_redis.password,
                                appendonly=False)
        try:
            wait_for(api, "redis", "ok")
            assert api.upload(user).status_code == 201
        finally:
            restarted.stop()
    finally:
        api.close()


def test_mlflow_not_there(tmp_path: Path, redis_server: RedisServer) -> None:
    api = open_api(tmp_path / "api", redis_server.url, f"http://127.0.0.1:{fresh_port()}")
    try:
        user = next(iter(api.tokens))
        body = wait_for(api, "mlflow", "down")
        assert body["redis"] == "ok"
        answer = api.upload(user)
        assert answer.status_code == 503 and "MLflow is not answering" in answer.json()["detail"]
        assert api.refs() == {}
        assert api.request("GET", "/jobs", user).json() == []  # none: the job index alone says so
    finally:
        api.close()
