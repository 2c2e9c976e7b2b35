"""Shared fixtures: a real redis-server, real instances made by the real CLI, a real `leadersboard
serve` process, and the real git client talking smart HTTP to it. Nothing is mocked.

- `redis_server` (session): one redis-server on a free port; `_flush_redis` empties it before each test.
- `make_instance` / `create_instance`: `leadersboard init`, data set `visa` (with `pcb1/`), users
  alice and bob with the tokens `leadersboard user add` printed.
- `start_server` / `running_server`: `leadersboard serve` on a free port against the fixture's Redis;
  stopped with SIGTERM at teardown, and checked to be gone.
- `GitClient`: git with an isolated HOME and config, credentials in the remote URL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from leadersboard.mlflow_server import MlflowServer, start_mlflow
from leadersboard.redis_server import RedisServer, free_port, start_redis

BIN = Path(sys.executable).parent
LEADERSBOARD = str(BIN / "leadersboard") if (BIN / "leadersboard").exists() else shutil.which("leadersboard")
SERVER_START_SECONDS = 60
SERVER_STOP_SECONDS = 15

GOOD_MAIN = '''"""A submission entrypoint."""


def main():
    print("training")


if __name__ == "__main__":
    main()
'''

GOOD_CONFIG = """model:
  class_path: anomalib.models.Padim
  init_args:
    backbone: resnet18
    pre_trained: false
data:
  class_path: anomalib.data.Folder
  name: visa
  init_args:
    name: pcb1
    root: pcb1/Data/Images
trainer:
  max_epochs: 1
"""


def submission_files(main: str | None = GOOD_MAIN, config: str | None = GOOD_CONFIG,
                     **extra: str | bytes) -> dict[str, str | bytes]:
    """The files of a submission folder (None leaves a file out); `extra` adds more."""
    files: dict[str, str | bytes] = {}
    if main is not None:
        files["main.py"] = main
    if config is not None:
        files["config.yaml"] = config
    files.update(extra)
    return files


def write_files(folder: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


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
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real MLflow tracking server for the session (it takes seconds to start); tests keep apart
    by their own benchmark and user names."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
        try:
            yield server
        finally:
            server.stop()
    assert server.process.poll() is not None, "the MLflow server did not stop"


# ------------------------------------------------------------------------------------------ instance


def run_cli(*args: str, home: Path | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`leadersboard ARGS` as a participant or operator runs it."""
    assert LEADERSBOARD, "the leadersboard console script is not installed"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")}
    full_env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if home is not None:
        full_env["LEADERSBOARD_HOME"] = str(home)
    full_env.update(env or {})
    result = subprocess.run([LEADERSBOARD, *args], capture_output=True, text=True, env=full_env,
                            timeout=60, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"leadersboard {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Instance:
    home: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.home / "submissions.git"

    @property
    def db_path(self) -> Path:
        return self.home / "leadersboard.db"

    @property
    def config_path(self) -> Path:
        return self.home / "leadersboard.yaml"

    @property
    def mlflow_uri(self) -> str:
        """Where the servers the tests start track jobs: a local SQLite store (no MLflow server)."""
        return f"sqlite:///{self.home / 'mlflow.db'}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, home=self.home, check=check)

    def add_user(self, name: str) -> str:
        token = self.cli("user", "add", name).stdout.strip().splitlines()[-1]
        self.tokens[name] = token
        return token

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of a read-only query on the instance's SQLite database."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def wait_rows(self, count: int, sql: str, *params: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """The rows of `sql` once there are `count` of them (jobs are created just after a push
        returns); fails when there are more, or still fewer after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query(sql, *params)
            assert len(rows) <= count, rows
            if len(rows) == count:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(rows)} rows, not {count}, after {timeout} s: {sql} {params}")
            time.sleep(0.05)

    def refs(self) -> str:
        """Every ref of the bare repository with its target (`git for-each-ref`)."""
        return subprocess.run(["git", "--git-dir", str(self.repo), "for-each-ref"], capture_output=True,
                              text=True, check=True, env=git_env(self.home)).stdout

    def ref(self, name: str) -> str | None:
        result = subprocess.run(["git", "--git-dir", str(self.repo), "rev-parse", "--verify", "--quiet", name],
                                capture_output=True, text=True, check=False, env=git_env(self.home))
        return result.stdout.strip() or None


_MLFLOW_TEMPLATE: list[Path] = []


def mlflow_template(base: Path) -> Path:
    """An empty MLflow SQLite store with its tables made (by MLflow itself, once per session): each
    instance starts from a copy, which saves every server the seconds MLflow's migrations take."""
    if not _MLFLOW_TEMPLATE:
        path = base / "mlflow-template.db"
        subprocess.run([sys.executable, "-W", "ignore", "-c",
                        "import sys; from mlflow.tracking import MlflowClient; "
                        "MlflowClient(tracking_uri='sqlite:///' + sys.argv[1]).search_experiments()", str(path)],
                       check=True, capture_output=True, timeout=120,
                       env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
        _MLFLOW_TEMPLATE.append(path)
    return _MLFLOW_TEMPLATE[0]


def create_instance(base: Path, limits: Mapping[str, int] | None = None,
                    datasets: tuple[str, ...] = ("visa",), users: tuple[str, ...] = ("alice", "bob")) -> Instance:
    """A fresh instance made with the real CLI: `init`, data sets (each with `pcb1/`), users."""
    home = base / "home"
    run_cli("init", "--home", str(home))
    shutil.copyfile(mlflow_template(base.parent), home / "mlflow.db")
    if limits:
        document = yaml.safe_load((home / "leadersboard.yaml").read_text(encoding="utf-8"))
        document["limits"].update(limits)
        (home / "leadersboard.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    inst = Instance(home)
    for name in datasets:
        folder = base / "data" / name
        (folder / "pcb1" / "Data" / "Images" / "Normal").mkdir(parents=True)
        inst.cli("dataset", "add", name, str(folder))
    for user in users:
        inst.add_user(user)
    return inst


@pytest.fixture
def make_instance(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Instance]:
    def make(**kwargs: Any) -> Instance:
        return create_instance(tmp_path_factory.mktemp("instance"), **kwargs)

    return make


@pytest.fixture
def instance(make_instance: Callable[..., Instance]) -> Instance:
    return make_instance()


# ---------------------------------------------------------------------------------------- the server


@dataclass
class Server:
    instance: Instance
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    web_port: int = 0  # the web form's

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def git_url(self) -> str:
        return f"{self.base_url}/git/submissions.git"

    def url_for(self, user: str | None, token: str | None = None) -> str:
        """The remote URL for `user` (credentials in the URL; None: anonymous)."""
        if user is None:
            return self.git_url
        token = self.instance.tokens[user] if token is None else token
        return f"http://{user}:{token}@127.0.0.1:{self.port}/git/submissions.git"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, as an operator stops it: a clean exit (0) within seconds, and its port closed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(SERVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"leadersboard serve ignored SIGTERM:\n{self.log()}") from None
        assert self.process.returncode == 0, f"serve exited {self.process.returncode}:\n{self.log()}"
        for port in (self.port, self.web_port) if self.web_port else (self.port,):
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after stop"


def launch_server(inst: Instance, redis_url: str | None, workers: int = 0) -> Server:
    """`leadersboard serve` on a free port; returns once /healthz answers 200.

    Without `redis_url`, serve starts its own Redis. With no workers (the default here) nothing
    consumes the queue, so admitted jobs stay pending."""
    assert LEADERSBOARD
    port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")}
    env.update(LEADERSBOARD_HOME=str(inst.home), MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1",
               # Jobs are MLflow runs: a local SQLite tracking store, no tracking server needed.
               MLFLOW_TRACKING_URI=inst.mlflow_uri)
    if redis_url is not None:
        env["LEADERSBOARD_REDIS_URL"] = redis_url
    log_path = inst.home / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([LEADERSBOARD, "serve", "--api-port", str(port), "--web-port", str(web_port),
                                    "--workers", str(workers)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server(inst, process, port, log_path, web_port)
    deadline = time.monotonic() + SERVER_START_SECONDS
    with httpx.Client(timeout=2) as client:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"leadersboard serve exited {process.returncode}:\n{server.log()}")
            try:
                if client.get(f"{server.base_url}/healthz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"leadersboard serve did not answer /healthz:\n{server.log()}")
            time.sleep(0.1)


@contextmanager
def running_server(inst: Instance, redis_server: RedisServer) -> Iterator[Server]:
    server = launch_server(inst, redis_server.url)
    try:
        yield server
    finally:
        server.stop()


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


# ------------------------------------------------------------------------------------------ git client


def git_env(home: Path) -> dict[str, str]:
    """An environment in which git reads no config of the developer's and never prompts."""
    config = home / ".gitconfig-isolated"
    if not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text("")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": str(config),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "LC_ALL": "C",
        "TZ": "UTC",
    }


class GitClient:
    """One participant's working repository, driven by the real `git` over real HTTP."""

    def __init__(self, workdir: Path, url: str, user: str = "participant") -> None:
        self.workdir = workdir
        self.url = url
        self.user = user
        self.env = git_env(workdir.parent / f".home-{workdir.name}")

    def git(self, *args: str, cwd: Path | None = None, check: bool = False,
            env: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Run git; (returncode, stdout and stderr together)."""
        result = subprocess.run(
            ["git", "-c", f"user.name={self.user}", "-c", f"user.email={self.user}@example.org", *args],
            cwd=cwd or self.workdir, env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} exited {result.returncode}:\n{result.stdout}")
        return result.returncode, result.stdout

    def init(self) -> GitClient:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main", check=True)
        self.git("remote", "add", "origin", self.url, check=True)
        return self

    def clone(self, branch: str | None = None) -> tuple[int, str]:
        args = ["clone", *(["--branch", branch] if branch else []), self.url, str(self.workdir)]
        return self.git(*args, cwd=self.workdir.parent)

    def write(self, files: Mapping[str, str | bytes], folder: str = "") -> None:
        write_files(self.workdir / folder if folder else self.workdir, files)

    def commit(self, message: str = "submission", files: Mapping[str, str | bytes] | None = None,
               folder: str = "") -> str:
        if files:
            self.write(files, folder)
        self.git("add", "--all", check=True)
        self.git("commit", "--quiet", "--allow-empty", "-m", message, check=True)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD", check=True)[1].strip()

    def push(self, refspec: str, *options: str, force: bool = False) -> tuple[int, str]:
        args = ["push"]
        for option in options:
            args += ["-o", option]
        if force:
            args.append("--force")
        return self.git(*args, "origin", refspec)


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


def remote_lines(output: str) -> list[str]:
    """The `remote:` lines of git's output, without the prefix and git's padding."""
    return [line[len("remote:"):].strip() for line in output.splitlines() if line.startswith("remote:")]


# ------------------------------------------------------------------------------- folders that break rules

SMALL_FILE_LIMIT = 1024 * 1024
# The instance the rule tests push to and validate against: two data sets, a 1 MiB limit per file.
RULES_INSTANCE: dict[str, Any] = {"limits": {"max_file_bytes": SMALL_FILE_LIMIT}, "datasets": ("visa", "miic")}


@dataclass(frozen=True)
class BadFolder:
    """A submission folder that breaks one rule, and the fragments its message must hold (one line)."""

    folder: str
    files: dict[str, str | bytes]
    expect: tuple[str, ...]
    symlink: str | None = None  # add this path as a symbolic link to main.py
    submodule: str | None = None  # add this path as a submodule (gitlink / nested repository)


# A list item where a mapping key belongs: the YAML error is on line 7.
INVALID_YAML = """model:
  class_path: anomalib.models.Padim
trainer: {}
data:
  name: visa
  init_args: {name: pcb1}
  - oops
"""

BAD_FOLDERS: dict[str, BadFolder] = {
    "invalid-yaml": BadFolder("broken", submission_files(config=INVALID_YAML), (
        "[config] broken/config.yaml line 7:", "not valid YAML",
        "Fix: correct the YAML syntax")),
    "yaml-list": BadFolder("broken", submission_files(config="- model\n- data\n- trainer\n"), (
        "[config] broken/config.yaml:", "must be a YAML mapping, not a list",
        "Fix: write top-level keys 'model:', 'data:' and 'trainer:'")),
    "missing-config": BadFolder("broken", submission_files(config=None), (
        "[config] broken/config.yaml:", "the config file is missing",
        "Fix: add config.yaml with 'model', 'data' and 'trainer' sections")),
    "missing-main": BadFolder("broken", submission_files(main=None), (
        "[entrypoint] broken/main.py:", "the entrypoint is missing",
        "Fix: add main.py defining main() or train()")),
    "syntax-error": BadFolder("broken", submission_files(main="import os\n\ndef main(:\n    pass\n"), (
        "[entrypoint] broken/main.py line 3:", "Python syntax error",
        "Fix: correct the syntax; 'python -m py_compile FILE' shows it locally")),
    "no-main-or-train": BadFolder("broken", submission_files(main="def helper():\n    return 1\n"), (
        "[entrypoint] broken/main.py:", "defines no top-level main() or train() function",
        "Fix: add 'def main():' at the top level")),
    "unknown-dataset": BadFolder("broken", submission_files(config=GOOD_CONFIG.replace("name: visa", "name: mvtec")), (
        "[config] broken/config.yaml:", "unknown data set 'mvtec' in data.name",
        "Fix: use one of: miic, visa")),
    "symlink": BadFolder("broken", submission_files(), (
        "[symlink] broken/link.py:", "symbolic links are not allowed",
        "Fix: replace the link with the file itself"), symlink="link.py"),
    "submodule": BadFolder("broken", submission_files(), (
        "[submodule] broken/vendor:", "submodules are not allowed",
        "Fix: copy the code into the folder"), submodule="vendor"),
    "oversized-file": BadFolder("broken", submission_files(**{"weights.bin": os.urandom(SMALL_FILE_LIMIT + 1024)}), (
        "[file-size] broken/weights.bin:", "over the 1.0 MB limit per file",
        "Fix: leave large files (weights, data) out of the submission")),
    "bad-folder-name": BadFolder("my@model", submission_files(), (
        "[folder-name] my@model/:", "the folder name 'my@model' is not allowed",
        "Fix: use 1-64 characters from A-Z a-z 0-9 . _ -")),
}


def find_message(lines: list[str], fragments: tuple[str, ...]) -> str:
    """The one line that holds every fragment (an assertion error shows all lines when none does)."""
    for line in lines:
        if all(fragment in line for fragment in fragments):
            return line
    raise AssertionError("no line holds all of " + repr(fragments) + ":\n" + "\n".join(lines))
