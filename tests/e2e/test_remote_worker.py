"""A worker on another host: it shares no file with the server. Here it runs in a mount namespace of
its own where the server's instance folder is hidden under an empty tmpfs, with its own instance
folder and its own copy of the data set, started with the server's URL and a worker token alone. Its
job's code comes over git, its results go through the MLflow gateway, and the server builds the site."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from support.instances import LEADERSBOARD, run_cli
from support.platform import MLFLOW_MAIN, Platform

pytestmark = [pytest.mark.slow]


class RemoteWorker:
    """`leadersboard worker --server URL` in a mount namespace where the server's home is hidden."""

    def __init__(self, platform: Platform, home: Path, token: str) -> None:
        self.platform, self.home, self.token = platform, home, token
        self.log_path = home.parent / "remote-worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RemoteWorker:
        assert LEADERSBOARD
        hidden = str(self.platform.instance.home)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADERSBOARD_", "MLFLOW_"))}
        env.update(LEADERSBOARD_WORKER_TOKEN=self.token, MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
        script = 'mount -t tmpfs -o size=1m hidden "$0" && exec "$@"'
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, hidden,
                 LEADERSBOARD, "worker", "--server", self.platform.base_url, "--home", str(self.home)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def remote_worker(make_platform: Callable[..., Platform], tmp_path: Path) -> Iterator[Callable[..., RemoteWorker]]:
    """`remote_worker(platform, same_data=True)`: a worker host joined to `platform` (serve without
    workers of its own), with its own instance and a copy of the data set (changed when not `same_data`)."""
    made: list[RemoteWorker] = []

    def make(platform: Platform, same_data: bool = True) -> RemoteWorker:
        host = tmp_path / f"worker-host-{len(made)}"
        home = host / "home"
        run_cli("init", "--home", str(home))
        config = yaml.safe_load((home / "leadersboard.yaml").read_text())
        config["runner"].update({"heartbeat_seconds": 1, "stop_grace_seconds": 1})
        (home / "leadersboard.yaml").write_text(yaml.safe_dump(config))
        server_copy = platform.instance.home.parent / "data" / "visa"  # where create_instance made it
        data = host / "visa"
        shutil.copytree(server_copy, data)
        if not same_data:
            (data / "pcb1" / "extra.txt").write_text("a file the server's copy does not have")
        run_cli("dataset", "add", "visa", str(data), home=home)
        name = f"gpu-host-{len(made)}"
        token = platform.instance.cli("worker-token", "add", name).stdout.strip().splitlines()[-1]
        worker = RemoteWorker(platform, home, token)
        made.append(worker)
        return worker.start()

    yield make
    for worker in made:
        worker.stop()


@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_a_worker_on_another_host_runs_a_push_to_the_end(make_platform: Callable[..., Platform],
                                                         remote_worker: Callable[..., RemoteWorker],
                                                         tmp_path: Path) -> None:
    platform = make_platform(workers=0)
    worker = remote_worker(platform)
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "remote", MLFLOW_MAIN.format(auroc=0.87, f1=0.6))
    job = platform.wait_status(job_id, user, timeout=300)
    assert job["status"] == "completed", (job, worker.log()[-3000:])
    assert job["metrics"]["auroc"] == 0.87 and job["metrics"]["runtime_seconds"] > 0
    assert (worker.home / "code-cache.git").is_dir()  # the code came over git, into the host's own cache
    log = platform.api("GET", f"/jobs/{job_id}/logs", user)
    assert log.status_code == 200 and "done: auroc=0.87" in log.text  # the job log, uploaded via the gateway
    # The worker cannot build the server's site; the server does, when the worker says a job ended.
    site = platform.instance.home / "site" / "leaderboard.json"
    deadline = time.monotonic() + 120
    while not (site.exists() and user in site.read_text()):
        assert time.monotonic() < deadline, f"the site was not rebuilt:\n{platform.log()[-3000:]}"
        time.sleep(0.5)
    assert worker.token not in worker.log()  # nor in anything the worker wrote


def test_a_worker_whose_data_set_differs_refuses_the_job_with_the_reason(make_platform: Callable[..., Platform],
                                                                        remote_worker: Callable[..., RemoteWorker],
                                                                        tmp_path: Path) -> None:
    platform = make_platform(workers=0)
    worker = remote_worker(platform, same_data=False)
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "differs", MLFLOW_MAIN.format(auroc=0.5, f1=0.5))
    job = platform.wait_status(job_id, user, timeout=300)
    assert job["status"] == "failed", (job, worker.log()[-3000:])
    assert "the data set 'visa' on worker host" in job["error"] and "differs" in job["error"], job["error"]


def test_a_worker_token_fetches_any_commit_and_pushes_nothing(make_platform: Callable[..., Platform],
                                                              tmp_path: Path) -> None:
    """Real git over HTTP: code is private between participants, but a worker token fetches another
    user's commit by its id; its push is refused and the repository stays as it was."""
    platform = make_platform(workers=0)
    user = next(iter(platform.instance.tokens))
    git = platform.client(tmp_path, user)
    platform.submit(git, "code", MLFLOW_MAIN.format(auroc=0.5, f1=0.5))
    commit = git.head()
    token = platform.instance.cli("worker-token", "add", "fetcher").stdout.strip().splitlines()[-1]
    header = "Authorization: Basic " + base64.b64encode(f"fetcher:{token}".encode()).decode()
    url = f"{platform.base_url}/git/submissions.git"
    cache = tmp_path / "cache.git"
    subprocess.run(["git", "init", "-q", "--bare", str(cache)], check=True)
    fetched = subprocess.run(["git", "-c", f"http.extraHeader={header}", "--git-dir", str(cache), "fetch", "-q",
                              url, commit], capture_output=True, text=True, check=False)
    assert fetched.returncode == 0, fetched.stderr
    assert subprocess.run(["git", "--git-dir", str(cache), "cat-file", "-e", commit], check=False).returncode == 0
    before = platform.instance.refs()
    refused = git.git("-c", f"http.extraHeader={header}", "push", url, "HEAD:refs/heads/users/fetcher")
    assert refused[0] != 0 and "pushes nothing" in refused[1]
    assert platform.instance.refs() == before


SLOW_MAIN = '''import time

import mlflow


def main():
    print("working", flush=True)
    time.sleep(15)
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.7)


if __name__ == "__main__":
    main()
'''


@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_a_worker_host_killed_mid_job_its_job_runs_again_on_another(make_platform: Callable[..., Platform],
                                                                   remote_worker: Callable[..., RemoteWorker],
                                                                   tmp_path: Path) -> None:
    platform = make_platform(workers=0)
    first = remote_worker(platform)
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "slow", SLOW_MAIN)
    platform.wait_status(job_id, user, wanted=("running",), timeout=300)
    assert first.process is not None
    first.process.kill()  # SIGKILL: no hand-back, no clean-up; its job's processes die with it
    first.process.wait()
    second = remote_worker(platform)
    job = platform.wait_status(job_id, user, timeout=300)
    assert job["status"] == "completed", (job, second.log()[-3000:], platform.log()[-3000:])
    assert job["metrics"]["auroc"] == 0.7
    run = platform.api("GET", f"/jobs/{job_id}/logs", user)
    assert run.status_code == 200 and "working" in run.text
    # What the killed worker's job left on its host (the server cannot reach it) goes when a worker runs
    # there again: its scratch folder (and control group) are removed, its job having ended elsewhere.
    left = first.home / "scratch" / job_id
    assert left.is_dir()
    again = RemoteWorker(platform, first.home, first.token).start()
    said = f"removed what ended job {job_id} left on this host"
    try:
        deadline = time.monotonic() + 90
        while (left.exists() or said not in again.log()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left.exists() and said in again.log(), again.log()[-3000:]
    finally:
        again.stop()
