"""Fixtures every tier shares. Nothing is mocked: a real redis-server, a real MLflow server, real
instances made by the real CLI, real `leadersboard serve` processes, the real git client.

- `redis_server` (session): one redis-server on a free port; `_flush_redis` empties it before each test.
- `mlflow_server` (session): one MLflow tracking server; tests keep apart by their own names. It is
  launched with the session's first test when any test will need it, so that it starts while the
  tests before them run (the quick tiers run first).
- `make_instance` / `instance`: `leadersboard init`, data set `visa` (with `pcb1/`), users alice and bob.
- `start_server` / `server`: `leadersboard serve` on a free port against the session's Redis, no workers.
- `make_platform`: `leadersboard serve` with workers and the session's MLflow server.
- `git_client`: a working repository driven by the real git over HTTP.

The helpers behind them live in `support/` (on the path through pytest's `pythonpath`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from leadersboard.local.mlflow_server import MlflowServer, launch_mlflow
from leadersboard.local.redis_server import RedisServer, start_redis

from support.early import EarlyRun
from support.git import GitClient
from support.instances import Instance, create_instance, start_mlflow_template
from support.mlflow_routes import ROUTE_DUMP
from support.platform import Platform, new_platform
from support.servers import Server, launch_server

# --------------------------------------------------------------------------------------------- redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"), appendonly=False)
    try:
        yield server
    finally:
        server.stop()
    assert server.process.poll() is not None, "redis-server did not stop"


@pytest.fixture(scope="session")
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _flush_redis(request: pytest.FixtureRequest) -> None:
    """Every test starts with an empty Redis (quotas, pending pushes, queue), when it uses Redis."""
    if "redis_server" in request.fixturenames:
        client: redis.Redis = request.getfixturevalue("redis_client")
        client.flushall()


# ------------------------------------------------------------------------------------------- mlflow


@pytest.fixture(scope="session")
def _mlflow_launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    # Its store in memory where the host has a tmpfs: every MLflow write commits to SQLite, and the
    # fsyncs on this disk cost the fast tiers ~8 s (measured). Nothing in it outlives the session.
    in_memory = Path("/dev/shm")
    folder = (Path(tempfile.mkdtemp(prefix="leadersboard-tests-mlflow-", dir=in_memory))
              if in_memory.is_dir() and os.access(in_memory, os.W_OK) else tmp_path_factory.mktemp("mlflow"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        server = launch_mlflow(folder)
        try:
            yield server
        finally:
            server.stop(timeout=0.5)  # the session is over: no graceful wind-down needed (~2 s)
            if folder.is_relative_to(in_memory):
                shutil.rmtree(folder, ignore_errors=True)
    assert server.process.poll() is not None, "the MLflow server did not stop"


@pytest.fixture(scope="session", autouse=True)
def _start_early(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What takes seconds of MLflow's imports to start (the MLflow server, the template store, MLflow's
    route table) starts with the session's first test when a later test needs it: on a spare core,
    while the tests before that one run. In a serial run (the fast tiers); a test process of `-n`
    starts each when a test needs it."""
    # A pytest-xdist worker collects every test but runs only its share: there, each starts when needed.
    items = [] if hasattr(request.config, "workerinput") else request.session.items

    def uses(fixture: str = "", helper: str = "") -> bool:
        return any(fixture in getattr(item, "fixturenames", ()) or hasattr(getattr(item, "module", None), helper)
                   for item in items)

    started: list[EarlyRun] = []
    if uses(fixture="mlflow_server"):
        request.getfixturevalue("_mlflow_launched")
    if uses(fixture="make_instance", helper="create_instance") or uses(helper="mlflow_template"):
        started.append(start_mlflow_template(tmp_path_factory.getbasetemp()))
    if uses(helper="mlflow_routes"):
        ROUTE_DUMP.start()
        started.append(ROUTE_DUMP)
    yield
    for run in started:
        run.stop()  # one the session ended before reading


@pytest.fixture(scope="session")
def mlflow_server(_mlflow_launched: MlflowServer) -> MlflowServer:
    """One real MLflow tracking server for the session; tests keep apart by their own benchmark and
    user names."""
    _mlflow_launched.wait_healthy()
    return _mlflow_launched


@pytest.fixture
def make_instance(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Instance]:
    def make(**kwargs: Any) -> Instance:
        return create_instance(tmp_path_factory.mktemp("instance"), **kwargs)

    return make


@pytest.fixture
def instance(make_instance: Callable[..., Instance]) -> Instance:
    return make_instance()


@pytest.fixture
def start_server(redis_server: RedisServer) -> Iterator[Callable[[Instance], Server]]:
    """Start a server for an instance; every one started is stopped (and checked) at teardown."""
    started: list[Server] = []

    def start(inst: Instance) -> Server:
        server = launch_server(inst, redis_server.url)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(instance: Instance, start_server: Callable[[Instance], Server]) -> Server:
    return start_server(instance)


@pytest.fixture
def git_client(tmp_path: Path) -> Callable[..., GitClient]:
    """`git_client(server, "alice")`: a new, initialised working repository for that user."""
    count = 0

    def make(server: Server, user: str | None, token: str | None = None, init: bool = True) -> GitClient:
        nonlocal count
        count += 1
        client = GitClient(tmp_path / f"work-{user or 'anonymous'}-{count}", server.url_for(user, token),
                           user or "anonymous")
        return client.init() if init else client

    return make


@pytest.fixture
def make_platform(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
                  mlflow_server: MlflowServer) -> Iterator[Callable[..., Platform]]:
    started: list[Platform] = []

    def make(workers: int = 1, redis_url: str | None = None, **options: Any) -> Platform:
        platform = new_platform(tmp_path_factory.mktemp("platform"), redis_url or redis_server.url,
                                mlflow_server.url, workers, **options)
        started.append(platform)
        return platform.start()

    yield make
    for platform in started:
        platform.stop()


# ------------------------------------------------------------------------------------------- order


TIER_ORDER = {"e2e": 0, "checks": 1, "unit": 2, "api": 3}
LONGEST_FILES = ("test_jobs.py", "test_faults.py", "test_docker_executor.py", "test_guide_samples.py",
                 "test_remote_worker.py", "test_restore.py", "test_gpus.py",
                 "test_quality.py")  # measured (--durations): several minutes each


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first, then the end-to-end tier, then the quick ones: with the files spread over
    test processes (`-n 3 --dist loadfile`), the long ones start at once and the rest fill in around them.
    The unit tier runs before the API tier: the session's MLflow server starts meanwhile."""
    def rank(item: pytest.Item) -> tuple[int, int]:
        if item.path.name in LONGEST_FILES:
            return 0, LONGEST_FILES.index(item.path.name)
        return 1 + TIER_ORDER.get(item.path.parent.name, len(TIER_ORDER)), 0

    items.sort(key=rank)
