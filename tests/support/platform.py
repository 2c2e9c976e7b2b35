"""A whole platform: `leadersboard serve` with real worker processes, a real Redis and a real MLflow
server; and submissions whose jobs take seconds (they only use MLflow)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from mlflow.tracking import MlflowClient

from leadersboard.contract import active_key, hourly_key

from .git import GitClient
from .instances import LEADERSBOARD, Instance, create_instance, unique_user
from .ports import fresh_port
from .servers import terminate

CONFIG = "model: {{}}\ndata: {{name: {dataset}, init_args: {{name: pcb1}}}}\ntrainer: {{}}\n"

MLFLOW_MAIN = '''import mlflow


def main():
    mlflow.set_experiment("mine")
    with mlflow.start_run():
        mlflow.log_param("depth", 3)
        mlflow.set_tag("team", "blue")
        mlflow.set_tag("leadersboard.user", "spoofed")
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("auroc", {auroc})
        mlflow.log_metric("f1_score", {f1})
        with open("notes.txt", "w") as f:
            f.write("my artifact")
        mlflow.log_artifact("notes.txt")
    print("done: auroc={auroc}")


if __name__ == "__main__":
    main()
'''

FAILING_MAIN = '''def main():
    print("loading")
    raise ValueError("the backbone is missing")


if __name__ == "__main__":
    main()
'''

# Starts a grandchild too: a time-out must kill the whole process group.
SLEEPING_MAIN = '''import subprocess
import sys
import time


def main():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)  # {marker}"])
    print("sleeping", flush=True)
    time.sleep(300)  # {marker}


if __name__ == "__main__":
    main()
'''

SILENT_MAIN = '''def main():
    print("I trained something but logged nothing")


if __name__ == "__main__":
    main()
'''


# Forks until the kernel refuses (the pids limit), then cleans up and completes.
FORK_MAIN = '''import os
import time

import mlflow


def main():
    children, refused = [], "never"
    for n in range(100000):
        try:
            pid = os.fork()
        except OSError as exc:
            refused = f"{type(exc).__name__} after {n} forks"
            break
        if pid == 0:
            time.sleep(120)
            os._exit(0)
        children.append(pid)
    print(f"fork refused: {refused}", flush=True)
    for pid in children:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.5)


if __name__ == "__main__":
    main()
'''


# Holds ever more memory, 64 MiB at a time, up to 4 GiB.
GREEDY_MAIN = '''def main():
    blocks = []
    for n in range(1, 64):
        blocks.append(b"x" * (64 * 1024 * 1024))
        print(f"holding {n * 64} MiB", flush=True)


if __name__ == "__main__":
    main()
'''


class Platform:
    """An instance served by `leadersboard serve` with workers, tracking jobs in a real MLflow server."""

    def __init__(self, instance: Instance, redis_url: str | None, mlflow_url: str | None, workers: int,
                 serve_args: tuple[str, ...] = (), wrapper: tuple[str, ...] = ()) -> None:
        """`redis_url`, `mlflow_url`: None lets serve start (and supervise) its own."""
        self.instance = instance
        self.serve_args = serve_args  # more options for `leadersboard serve`
        self.wrapper = wrapper  # a command that runs `leadersboard serve` (unshare ..., say)
        self.redis_url = redis_url
        self.mlflow_url = mlflow_url
        self.workers = workers
        self.port = fresh_port()
        self.web_port = fresh_port()
        self.mlflow_port = fresh_port()  # the MLflow gateway's
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = instance.home / f"serve-{self.port}.log"
        self.extra_workers: list[subprocess.Popen[bytes]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADERSBOARD_", "MLFLOW_"))}
        env.update(LEADERSBOARD_HOME=str(self.instance.home), MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
        if self.redis_url:
            env["LEADERSBOARD_REDIS_URL"] = self.redis_url
        if self.mlflow_url:
            env["MLFLOW_TRACKING_URI"] = self.mlflow_url
        return env

    @property
    def mlflow_gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def start(self, timeout: float = 180) -> Platform:
        """Start serve; returns once /healthz answers 200 (a serve that starts its own MLflow server
        on a fresh database needs longer)."""
        assert LEADERSBOARD
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.wrapper, LEADERSBOARD, "serve", "--api-port", str(self.port), "--web-port", str(self.web_port),
                 "--mlflow-port", str(self.mlflow_port), "--workers", str(self.workers), *self.serve_args],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"serve exited:\n{self.log()}"
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:  # a loaded machine (CI) may need minutes; never leave it running
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"serve did not become healthy:\n{self.log()}")
            time.sleep(0.2)

    def start_worker(self) -> subprocess.Popen[bytes]:
        assert LEADERSBOARD
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen([LEADERSBOARD, "worker"], env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        self.extra_workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in [*self.extra_workers, *([self.process] if self.process else [])]:
            if not terminate(proc, 60, serve=proc is self.process):
                raise AssertionError(f"a platform process ignored SIGTERM:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def slots(self, user: str) -> tuple[int, int]:
        """(hourly, active) slots the user holds."""
        assert self.redis_url
        client = redis.Redis.from_url(self.redis_url)
        try:
            return int(client.zcard(hourly_key(user))), int(client.zcard(active_key(user)))  # type: ignore[arg-type]
        finally:
            client.close()

    def slots_once_ended(self, user: str, expected: tuple[int, int], timeout: float = 10) -> tuple[int, int]:
        """The user's slots once a job's end has settled: its slot is given back just after its final status
        is written, so a client that saw the status may read the slot a moment early. Returns what it read
        last (`expected`, or what stayed otherwise for `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while (found := self.slots(user)) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        return found

    def api(self, method: str, path: str, user: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.instance.tokens[user]}"}
        return httpx.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def status(self, job_id: str, user: str) -> dict[str, Any]:
        answer = self.api("GET", f"/jobs/{job_id}/status", user)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def wait_status(self, job_id: str, user: str, wanted: tuple[str, ...] = ("completed", "failed", "cancelled"),
                    timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.status(job_id, user)
            if job["status"] in wanted:
                return job
            assert time.monotonic() < deadline, f"job stayed {job['status']}:\n{self.log()[-3000:]}"
            time.sleep(0.3)

    def healthz_until(self, done: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        """/healthz answers from the service's last check (every second): poll until `done` holds."""
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = httpx.get(f"{self.base_url}/healthz", timeout=10).json()
            if done(body) or time.monotonic() > deadline:
                return body
            time.sleep(0.3)

    def client(self, tmp: Path, user: str) -> GitClient:
        url = f"http://{user}:{self.instance.tokens[user]}@127.0.0.1:{self.port}/git/submissions.git"
        git = GitClient(tmp / f"clone-{user}-{uuid.uuid4().hex[:6]}", url, user).init()
        git.git("checkout", "-q", "-b", f"users/{user}", check=True)
        return git

    def submit(self, git: GitClient, folder: str, main: str, dataset: str = "visa", topic: str | None = None) -> str:
        """Push one folder (to the user's branch, or a topic branch of theirs); the job id the push printed."""
        git.commit(f"submit {folder}", {"main.py": main, "config.yaml": CONFIG.format(dataset=dataset)}, folder)
        code, out = git.push(f"HEAD:users/{git.user}/{topic}" if topic else f"users/{git.user}")
        assert code == 0, out
        ids = [line.split(" job ", 1)[1].split()[0] for line in out.splitlines() if f"{folder}: job " in line]
        assert len(ids) == 1, out
        return ids[0]


EXFILTRATING_MAIN = '''import os
import sqlite3
from urllib.parse import urlparse

import mlflow


def main():
    with mlflow.start_run() as run:
        mlflow.log_metric("auroc", 0.99)
    home = os.path.abspath("../../..")  # scratch/<job>/work -> the instance folder
    db = sqlite3.connect(urlparse(os.environ["MLFLOW_TRACKING_URI"]).path)
    db.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", ("file://" + home, run.info.run_id))
    db.commit()


if __name__ == "__main__":
    main()
'''


def processes_with(marker: str) -> list[int]:
    """Pids whose command line holds `marker` (to prove nothing a job started is left running)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def run_tags(platform: Platform, job: dict[str, Any]) -> tuple[Any, MlflowClient]:
    client = MlflowClient(tracking_uri=platform.mlflow_url)
    runs = [r for e in client.search_experiments() for r in client.search_runs(
        [e.experiment_id], f"tags.`leadersboard.job_id` = '{job['job_id']}'")]
    assert len(runs) == 1
    return runs[0], client


def new_platform(base: Path, redis_url: str | None, mlflow_url: str | None, workers: int = 1,
                 limits: dict[str, int] | None = None, runner: dict[str, int] | None = None, users: int = 1,
                 datasets: tuple[str, ...] = ("visa",), classes: dict[str, Any] | None = None) -> Platform:
    """An instance made by the CLI, with users of unique names and quick upkeep, not yet started;
    `classes`: its `resource_classes` section."""
    inst = create_instance(base, limits=limits, datasets=datasets, users=tuple(unique_user() for _ in range(users)))
    document = yaml.safe_load(inst.config_path.read_text())
    # Quick upkeep, and a quick stop: a job still running at a test's end is handed back after 1 s.
    document["runner"].update({"heartbeat_seconds": 1, "reconcile_seconds": 1, "stop_grace_seconds": 1,
                               **(runner or {})})
    if classes is not None:
        document["resource_classes"] = classes
    inst.config_path.write_text(yaml.safe_dump(document))
    return Platform(inst, redis_url, mlflow_url, workers)
