"""Fixtures every tier shares. Nothing is mocked: a real redis-server, a real MLflow server, real
instances made by the real CLI, real `leadersboard serve` processes, the real git client.

- `redis_server` (session): one redis-server on a free port; `_flush_redis` empties it before each test.
- `mlflow_server` (session): one MLflow tracking server for the whole run, shared by pytest-xdist's
  workers (`support/shared.py`); tests keep apart by their own names. It is launched with the
  session's first test when any test will need it, so that it starts while the tests before them run
  (the quick tiers run first).
- `make_instance` / `instance`: `leadersboard init`, data set `visa` (with `pcb1/`), users alice and bob.
- `start_server` / `server`: `leadersboard serve` on a free port against the session's Redis, no workers.
- `make_platform`: `leadersboard serve` with workers and the session's MLflow server.
- `git_client`: a working repository driven by the real git over HTTP.

The helpers behind them live in `support/` (on the path through pytest's `pythonpath`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from leadersboard.local.redis_server import RedisServer, start_redis

from support.git import GitClient
from support.instances import MLFLOW_TEMPLATE, Instance, create_instance
from support.mlflow_routes import ROUTE_DUMP
from support.platform import Platform, new_platform
from support.servers import Server, launch_server
from support.shared import SessionMlflow, end_run, new_run_folder, run_folder, session_mlflow, use_run_folder

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
    with redis.Redis.from_url(redis_server.url) as client:  # closed when the fixture ends
        yield client


@pytest.fixture(autouse=True)
def _flush_redis(request: pytest.FixtureRequest) -> None:
    """Every test starts with an empty Redis (quotas, pending pushes, queue), when it uses Redis."""
    if "redis_server" in request.fixturenames:
        client: redis.Redis = request.getfixturevalue("redis_client")
        client.flushall()


# ------------------------------------------------------------------------------------------- mlflow


def pytest_configure(config: pytest.Config) -> None:
    """The run's folder for what its processes share (`support/shared.py`): made by the run's first
    process, handed to pytest-xdist's workers."""
    workerinput = getattr(config, "workerinput", None)
    use_run_folder(Path(workerinput["leadersboard_run"]) if workerinput else new_run_folder())


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # pytest-xdist's, in its controller: one call per worker
    node.workerinput["leadersboard_run"] = str(run_folder())


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the run's first process: every worker has ended
        end_run(run_folder())


@pytest.fixture(scope="session", autouse=True)
def _start_early(request: pytest.FixtureRequest) -> None:
    """What takes seconds of MLflow's imports to start (the MLflow server, the template store, MLflow's
    route table) starts with the session's first test when a test of the run needs it: on a spare core,
    while the tests before that one run. Each starts once per run, in whichever process asks first."""
    def uses(fixture: str = "", helper: str = "") -> bool:
        return any(fixture in getattr(item, "fixturenames", ()) or hasattr(getattr(item, "module", None), helper)
                   for item in request.session.items)

    if uses(fixture="mlflow_server"):
        session_mlflow()
    if uses(fixture="make_instance", helper="create_instance") or uses(helper="mlflow_template"):
        MLFLOW_TEMPLATE.start()
    if uses(helper="mlflow_routes"):
        ROUTE_DUMP.start()


@pytest.fixture(scope="session")
def mlflow_server() -> SessionMlflow:
    """One real MLflow tracking server for the run (every test process shares it); tests keep apart by
    their own benchmark and user names."""
    server = session_mlflow()
    server.wait_healthy()
    return server


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
                  mlflow_server: SessionMlflow) -> Iterator[Callable[..., Platform]]:
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
