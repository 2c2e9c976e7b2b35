"""Whatever dies, nothing is lost and nothing hangs: real `leadersboard serve` processes, real Redis and
MLflow servers, real workers and jobs, each fault injected for real (SIGKILL, SIGTERM).

Where serve starts its own Redis or MLflow (the URL left out), it supervises them: the test kills them
and watches them come back, through /healthz's `supervised` field.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadersboard.cli.instance_lock import read_record
from leadersboard.cli.leftovers import marked_processes, start_time
from leadersboard.jobs import SLOT_GIVEN_BACK
from leadersboard.local.redis_server import RedisServer

from support.instances import create_instance, unique_user
from support.platform import MLFLOW_MAIN, SLEEPING_MAIN, Platform, new_platform, processes_with, run_tags
from support.ports import fresh_port
from support.shared import SessionMlflow

# Works for a while, then logs its result: long enough to be running when the fault comes.
SLOW_MAIN = '''import time

import mlflow


def main():
    print("working", flush=True)
    time.sleep({seconds})
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.75)
    print("done", flush=True)


if __name__ == "__main__":
    main()
'''

# Leaves a process behind, in a session of its own, holding the job's output open.
LEAVES_A_PROCESS_MAIN = '''import subprocess
import sys

import mlflow


def main():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)  # {marker}"], start_new_session=True)
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.6)
    print("main is done", flush=True)


if __name__ == "__main__":
    main()
'''

FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture
def own_services(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
                 mlflow_server: SessionMlflow) -> Iterator[Callable[..., Platform]]:
    """`make(redis=False, mlflow=False)`: a platform whose serve starts its own Redis and/or MLflow
    (the session's are used for what is not its own)."""
    started: list[Platform] = []

    def make(redis: bool = False, mlflow: bool = False, runner: dict[str, int] | None = None) -> Platform:
        platform = new_platform(tmp_path_factory.mktemp("platform"), None if redis else redis_server.url,
                                None if mlflow else mlflow_server.url, runner=runner)
        if mlflow:  # a migrated database: a fresh one costs the first start ~15 s more
            (platform.instance.home / "mlflow").mkdir()
            shutil.copyfile(platform.instance.home / "mlflow.db", platform.instance.home / "mlflow" / "mlflow.db")
        started.append(platform)
        return platform.start(timeout=180)

    yield make
    for platform in started:
        platform.stop()


def health(platform: Platform) -> dict[str, Any]:
    """/healthz's body, whatever its code (503 while a part is down)."""
    try:
        body: dict[str, Any] = httpx.get(f"{platform.base_url}/healthz", timeout=10).json()
    except (httpx.TransportError, ValueError):
        return {}
    return body


def supervised(platform: Platform, name: str) -> dict[str, Any]:
    found: dict[str, Any] = health(platform).get("supervised", {}).get(name, {})
    return found


def wait_until(condition: Callable[[], Any], timeout: float, what: str, platform: Platform) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}, not in {timeout:.0f} s:\n{platform.log()[-4000:]}"
        time.sleep(0.3)


def job_status(platform: Platform, job_id: str, user: str) -> dict[str, Any]:
    """The job's status document, or {} while the platform cannot answer (a part is restarting)."""
    try:
        answer = platform.api("GET", f"/jobs/{job_id}/status", user)
    except httpx.TransportError:
        return {}
    found: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
    return found


def wait_job(platform: Platform, job_id: str, user: str, wanted: tuple[str, ...] = FINISHED,
             timeout: float = 180) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: (job := job_status(platform, job_id, user)) and job["status"] in wanted and job,
        timeout, f"job {job_id} did not become {'/'.join(wanted)}", platform)
    return found


def worker_pid(platform: Platform, job_id: str) -> int:
    run, _ = run_tags(platform, {"job_id": job_id})
    return int(run.data.tags["leadersboard.worker"].rsplit(":", 1)[1])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------------------------------------ one serve


def test_a_second_serve_of_the_instance_is_refused(own_services: Callable[..., Platform]) -> None:
    platform = own_services()
    assert platform.process is not None
    second = subprocess.run(
        [sys.executable, "-m", "leadersboard.cli", "serve", "--api-port", str(fresh_port()), "--web-port",
         str(fresh_port()), "--mlflow-port", str(fresh_port()), "--workers", "0"],
        env=platform.env(), capture_output=True, text=True, timeout=180, check=False)  # a loaded CI host
    assert second.returncode != 0
    assert f"another `leadersboard serve` (pid {platform.process.pid}) is running this instance" in second.stderr
    assert health(platform)["status"] == "ok"


# ------------------------------------------------------------------------------------- what serve runs


def test_redis_killed_a_pending_job_completes(own_services: Callable[..., Platform], tmp_path: Path) -> None:
    platform = own_services(redis=True)
    user = next(iter(platform.instance.tokens))
    git = platform.client(tmp_path, user)
    running = platform.submit(git, "slow", SLOW_MAIN.format(seconds=6))
    wait_job(platform, running, user, ("running",))
    pending = platform.submit(git, "quick", MLFLOW_MAIN.format(auroc=0.8, f1=0.7))
    assert wait_job(platform, pending, user, ("pending",))
    killed = supervised(platform, "redis-server")["pid"]

    os.kill(killed, signal.SIGKILL)
    back = wait_until(lambda: (s := supervised(platform, "redis-server")).get("restarts") == 1 and s, 60,
                      "Redis was not started again", platform)
    assert back["state"] == "up" and back["last_exit"] == "was killed by SIGKILL" and back["pid"] != killed
    for job_id in (running, pending):
        assert wait_job(platform, job_id, user)["status"] == "completed"
    assert f"redis-server (pid {killed}) was killed by SIGKILL" in platform.log()
    assert supervised(platform, "worker 0")["restarts"] == 0, "the worker did not ride out Redis's restart"


def test_mlflow_killed_the_running_job_completes(own_services: Callable[..., Platform], tmp_path: Path) -> None:
    platform = own_services(mlflow=True)
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "slow", SLOW_MAIN.format(seconds=4))
    wait_job(platform, job_id, user, ("running",))
    killed = supervised(platform, "mlflow")["pid"]
    assert group_alive(killed)

    os.kill(killed, signal.SIGKILL)  # its gunicorn master and workers live on in its group, holding the port
    wait_until(lambda: supervised(platform, "mlflow").get("restarts") == 1, 120, "MLflow was not started again",
               platform)
    job = wait_job(platform, job_id, user)
    assert job["status"] == "completed" and job["attempts"] == 1, job
    assert not group_alive(killed), "the killed server's gunicorn was left running"
    assert health(platform)["mlflow"] == "ok"


@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_serve_killed_leaves_nothing_and_its_restart_completes_the_job(own_services: Callable[..., Platform],
                                                                        tmp_path: Path) -> None:
    platform = own_services(redis=True, mlflow=True)
    assert platform.process is not None
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "slow", SLOW_MAIN.format(seconds=8))
    wait_job(platform, job_id, user, ("running",))
    run_dir = platform.instance.home / "run"
    record = read_record(run_dir)
    assert {"guardian", "redis-server", "mlflow", "worker 0"} <= set(record["groups"])
    assert marked_processes(record["mark"])

    platform.process.kill()
    platform.process.wait()
    wait_until(lambda: not marked_processes(record["mark"]) and not any(
        start_time(pid) == started for pid, started in record["groups"].values()), 20,
        "processes of the killed serve live on", platform)

    platform.start(timeout=180)
    assert f"the previous serve of this instance (pid {record['pid']}) did not stop cleanly" in platform.log()
    job = wait_job(platform, job_id, user)
    assert job["status"] == "completed" and job["attempts"] == 2, job
    mark = read_record(run_dir)["mark"]
    workers = [pid for pid in marked_processes(mark)
               if b"leadersboard.cli\0worker\0" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 1, "more than one worker took the queue"


# ------------------------------------------------------------------------------------- stops and losses


@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_sigterm_hands_the_running_job_back_and_it_completes_after_the_restart(
        make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform()  # runner.stop_grace_seconds: 1
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "slow", SLOW_MAIN.format(seconds=10))
    wait_job(platform, job_id, user, ("running",))

    platform.stop()  # SIGTERM: a grace of 1 s, then the job is handed back
    run, _ = run_tags(platform, {"job_id": job_id})
    tags = run.data.tags
    assert run.info.status == "SCHEDULED" and tags["leadersboard.status"] == "pending", tags
    assert tags["leadersboard.attempts"] == "1" and "platform stopped" in tags["leadersboard.handed_back"]
    assert "leadersboard.error" not in tags
    assert platform.slots(user) == (1, 1)

    platform.start()
    job = wait_job(platform, job_id, user)
    assert job["status"] == "completed" and job["attempts"] == 2 and job["error"] is None, job
    log = platform.api("GET", f"/jobs/{job_id}/logs", user).text
    assert "handed back: the platform stopped while the job ran" in log and "on request" not in log
    assert platform.slots_once_ended(user, (1, 0)) == (1, 0), "a slot was spent twice, or kept"


def test_a_dead_workers_job_runs_again_once_then_fails(make_platform: Callable[..., Platform],
                                                       tmp_path: Path) -> None:
    platform = make_platform()
    user = next(iter(platform.instance.tokens))
    marker = f"lb-marker-{uuid.uuid4().hex}"
    job_id = platform.submit(platform.client(tmp_path, user), "sleepy", SLEEPING_MAIN.format(marker=marker))
    wait_job(platform, job_id, user, ("running",))

    os.kill(worker_pid(platform, job_id), signal.SIGKILL)
    job = wait_until(
        lambda: (j := job_status(platform, job_id, user)) and j["status"] == "running" and j["attempts"] == 2 and j,
        60, "the job did not run again", platform)
    assert job["error"] is None
    assert platform.slots(user) == (1, 1)

    os.kill(worker_pid(platform, job_id), signal.SIGKILL)
    job = wait_job(platform, job_id, user, ("failed",), timeout=60)
    assert "stopped unexpectedly, twice" in job["error"] and SLOT_GIVEN_BACK in job["error"], job
    assert platform.slots_once_ended(user, (0, 0)) == (0, 0)
    wait_until(lambda: not processes_with(marker), 15, "the job's processes outlived their worker", platform)
    wait_until(lambda: not list((platform.instance.home / "scratch").glob("*")), 15,
               "the dead job's scratch folder was left", platform)


# ------------------------------------------------------------------------------------- the job's end


def test_a_process_left_behind_does_not_hold_an_unconfined_job(tmp_path_factory: pytest.TempPathFactory,
                                                               redis_server: RedisServer, tmp_path: Path) -> None:
    """`serve` in a user namespace where it is not root: jobs run unconfined. The job's main process
    exits, leaving a process that holds its output: the job completes, and that process is gone."""
    user = unique_user()
    inst = create_instance(tmp_path_factory.mktemp("unconfined"), limits={"job_timeout_seconds": 60}, users=(user,))
    platform = Platform(inst, redis_server.url, inst.mlflow_uri, workers=1,
                        wrapper=("unshare", "--user", "--map-user=65534", "--map-group=65534"))
    marker = f"lb-left-{uuid.uuid4().hex}"
    try:
        platform.start()
        job_id = platform.submit(platform.client(tmp_path, user), "leaves", LEAVES_A_PROCESS_MAIN.format(marker=marker))
        job = wait_job(platform, job_id, user, timeout=60)
        log = platform.api("GET", f"/jobs/{job_id}/logs", user).text
        assert job["status"] == "completed", (job, log)
        assert "sandbox: unconfined" in log and "main is done" in log
        wait_until(lambda: not processes_with(marker), 15, "the process left behind outlived its job", platform)
    finally:
        platform.stop()
