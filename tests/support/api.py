"""The service's app in this process, as the API tier drives it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2  # what the test client answers with
import pygit2
from fastapi.testclient import TestClient

from leadersboard.cli import instance
from leadersboard.local.datagen import generate_dataset
from leadersboard.settings import Limits, Settings
from leadersboard.users import UserStore
from leadersboard.webhook.app import create_app

from .instances import GOOD_CONFIG, GOOD_MAIN

WEB_PORT = 8501  # the test client's requests to this port reach the web form, as on a real server


@dataclass
class Api:
    settings: Settings
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def request(self, method: str, path: str, user: str | None = None, **kwargs: Any) -> httpx2.Response:
        headers = {**(self.auth(user) if user else {}), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def upload(self, user: str, files: dict[str, str | bytes] | None = None, **fields: str) -> httpx2.Response:
        """POST /submissions with `files` (default: a good main.py and config.yaml) and form fields."""
        files = {"main.py": GOOD_MAIN, "config.yaml": GOOD_CONFIG} if files is None else files
        parts = [("files", (name, content)) for name, content in files.items()]
        return self.request("POST", "/submissions", user, files=parts, data=fields)

    def refs(self) -> dict[str, str]:
        repo = pygit2.Repository(str(self.settings.repo_path))
        return {name: str(repo.references[name].target) for name in repo.references}

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def open_api(base: Path, redis_url: str, mlflow_url: str, users: int = 2, **limits: Any) -> Api:
    """An instance in `base` (data set visa with pcb1/, `users` participants) and its app, started."""
    home = base / "home"
    settings = Settings.load(home, environ={"LEADERSBOARD_REDIS_URL": redis_url, "MLFLOW_TRACKING_URI": mlflow_url})
    # Health checked every 0.2 s, not every second: an outage is seen within half a second.
    settings = settings.with_overrides(limits=Limits(**limits), health_check_ms=200)
    instance.init(settings)
    data = base / "visa"
    generate_dataset(data, "visa", ("pcb1",), normal=2, anomalous=1, size=32)
    settings = instance.add_dataset(settings, "visa", data)
    store = UserStore(settings.db_path)
    tokens = {}
    for _ in range(users):
        name = "u" + uuid.uuid4().hex[:10]  # the MLflow server is shared: names keep tests apart
        tokens[name] = store.add(name)
    client = TestClient(create_app(settings, reconcile=False), raise_server_exceptions=False)
    client.__enter__()  # runs the app's lifespan: the service starts
    return Api(settings, client, tokens)


def web_client(api: Api) -> TestClient:
    """The same app, reached on the web form's port (the service routes by the port asked for)."""
    return TestClient(api.client.app, base_url=f"http://testserver:{WEB_PORT}")
