"""From push to leaderboard: real redis-server, real MLflow server, real `leadersboard serve` with real
worker processes, real git over HTTP. Submissions here only use MLflow, so each job takes seconds."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from leadersboard.examples import PADIM as EXAMPLE
from leadersboard.local.datagen import generate_dataset
from leadersboard.local.redis_server import start_redis

from support.platform import (
    EXFILTRATING_MAIN,
    FAILING_MAIN,
    MLFLOW_MAIN,
    SILENT_MAIN,
    SLEEPING_MAIN,
    Platform,
    processes_with,
    run_tags,
)
from support.ports import fresh_port


def test_push_to_leaderboard(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform()
    user = next(iter(platform.instance.tokens))
    git = platform.client(tmp_path, user)
    job_id = platform.submit(git, "tiny", MLFLOW_MAIN.format(auroc=0.91, f1=0.8))

    job = platform.wait_status(job_id, user)
    assert job["status"] == "completed", job
    assert job["metrics"]["auroc"] == pytest.approx(0.91)
    assert job["metrics"]["f1_score"] == pytest.approx(0.8)
    assert job["metrics"]["runtime_seconds"] > 0
    assert job["benchmark"] == "visa/pcb1" and job["error"] is None and job["finished_at"]

    run, client = run_tags(platform, job)
    tags = run.data.tags
    commit = git.head()
    assert run.info.status == "FINISHED"
    assert tags["leadersboard.user"] == user  # the submission's spoofed platform tag was not copied
    assert tags["leadersboard.commit"] == commit and tags["mlflow.source.git.commit"] == commit
    assert tags["leadersboard.folder"] == "tiny" and tags["leadersboard.benchmark"] == "visa/pcb1"
    assert tags["leadersboard.submission_id"] == job["submission_id"] and tags["team"] == "blue"
    assert run.data.params == {"depth": "3"}
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == pytest.approx([1, 0.5, 1 / 3])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"notes.txt", "leadersboard"} <= artifacts
    log_dir = Path(client.download_artifacts(run.info.run_id, "leadersboard", str(tmp_path / "dl")))
    log_text = (log_dir / "job.log").read_text()
    assert "done: auroc=0.91" in log_text and "status: completed" in log_text
    assert platform.api("GET", f"/jobs/{job_id}/logs", user).text.count("done: auroc=0.91") == 1

    listed = platform.api("GET", "/jobs", user).json()
    assert [j["job_id"] for j in listed] == [job_id]
    assert not list((platform.instance.home / "scratch").glob("*")), "scratch space was not removed"

    deadline = time.monotonic() + 30
    board = platform.instance.home / "site" / "leaderboard.json"
    while not board.exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    rows = [r for b in json.loads(board.read_text())["benchmarks"] for r in b["ranking"] if r["job_id"] == job_id]
    assert len(rows) == 1 and rows[0]["user"] == user and rows[0]["submission"] == "tiny"
    assert rows[0]["auroc"] == pytest.approx(0.91) and rows[0]["commit"] == commit


@pytest.mark.parametrize(
    ("main", "reason"),
    [
        (FAILING_MAIN, "main.py exited with code 1: ValueError: the backbone is missing"),
        (SILENT_MAIN, "no 'auroc' metric was logged"),
    ],
    ids=["exits-non-zero", "logs-nothing"],
)
def test_failed_jobs_say_why(make_platform: Callable[..., Platform], tmp_path: Path, main: str, reason: str) -> None:
    platform = make_platform()
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "broken", main)
    job = platform.wait_status(job_id, user)
    assert job["status"] == "failed"
    assert reason in job["error"]
    assert reason.split(":")[0] in platform.api("GET", f"/jobs/{job_id}/logs", user).text
    assert not list((platform.instance.home / "scratch").glob("*"))
    # The job's admission slot is given back: three more may be active at once.
    assert platform.slots_once_ended(user, (1, 0)) == (1, 0)


def test_timeout_kills_everything(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform(limits={"job_timeout_seconds": 4})
    user = next(iter(platform.instance.tokens))
    marker = f"lb-marker-{uuid.uuid4().hex}"
    job_id = platform.submit(platform.client(tmp_path, user), "sleepy", SLEEPING_MAIN.format(marker=marker))
    platform.wait_status(job_id, user, ("running",), timeout=60)
    job = platform.wait_status(job_id, user, timeout=60)
    assert job["status"] == "failed"
    assert "time limit of 4 s" in job["error"]
    assert processes_with(marker) == [], "the job's processes outlived its time limit"
    assert not list((platform.instance.home / "scratch").glob("*"))


def test_a_jobs_resource_class_sets_its_time_limit_cpus_and_memory(make_platform: Callable[..., Platform],
                                                                    tmp_path: Path) -> None:
    quick = {"cpus": 1, "memory": "1g", "gpus": 0, "time_limit_seconds": 3}
    platform = make_platform(classes={"default": "quick", "classes": {"quick": quick}})  # limits: 4 h, 32g
    user = next(iter(platform.instance.tokens))
    marker = f"lb-marker-{uuid.uuid4().hex}"
    job_id = platform.submit(platform.client(tmp_path, user), "sleepy", SLEEPING_MAIN.format(marker=marker))
    job = platform.wait_status(job_id, user, timeout=90)
    assert job["status"] == "failed" and "time limit of 3 s" in job["error"], job
    log = platform.api("GET", f"/jobs/{job_id}/logs", user).text
    assert "class quick: 1 CPU(s), memory 1g, no GPU, time limit 3 s" in log, log  # its class has gpus: 0
    assert processes_with(marker) == []


def test_cancel_stops_a_running_job(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform()
    user = next(iter(platform.instance.tokens))
    marker = f"lb-marker-{uuid.uuid4().hex}"
    job_id = platform.submit(platform.client(tmp_path, user), "sleepy", SLEEPING_MAIN.format(marker=marker))
    platform.wait_status(job_id, user, ("running",), timeout=60)
    deadline = time.monotonic() + 30
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    answer = platform.api("POST", f"/jobs/{job_id}/cancel", user)
    assert answer.status_code == 200, answer.text
    job = platform.wait_status(job_id, user, timeout=60)
    assert job["status"] == "cancelled"
    assert processes_with(marker) == []
    assert platform.api("POST", f"/jobs/{job_id}/cancel", user).status_code == 409


def test_redis_lost_while_pending_is_requeued(make_platform: Callable[..., Platform], tmp_path: Path,
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    redis_dir = tmp_path_factory.mktemp("own-redis")
    redis = start_redis(redis_dir, port=fresh_port(), appendonly=False)  # restarted on the same port
    try:
        platform = make_platform(workers=0, redis_url=redis.url)
        user = next(iter(platform.instance.tokens))
        job_id = platform.submit(platform.client(tmp_path, user), "tiny", MLFLOW_MAIN.format(auroc=0.7, f1=0.6))
        time.sleep(1)  # the job is created and queued just after the push returns
        assert platform.status(job_id, user)["status"] == "pending"

        redis.stop()  # everything Redis held (queue, counters) is gone
        redis = start_redis(redis_dir, port=redis.port, password=redis.password, appendonly=False)
        platform.start_worker()
        job = platform.wait_status(job_id, user, timeout=90)
        assert job["status"] == "completed", job
        assert "re-queued job" in platform.log()
    finally:
        redis.stop()


def test_ranking_best_entry_per_user(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform(users=2, datasets=("ranked",))
    first, second = list(platform.instance.tokens)
    git_a, git_b = platform.client(tmp_path, first), platform.client(tmp_path, second)
    jobs = [
        (first, platform.submit(git_a, "base", MLFLOW_MAIN.format(auroc=0.80, f1=0.7), "ranked")),
        (second, platform.submit(git_b, "theirs", MLFLOW_MAIN.format(auroc=0.85, f1=0.7), "ranked")),
    ]
    for user, job_id in jobs:
        assert platform.wait_status(job_id, user)["status"] == "completed"
    better = platform.submit(git_a, "better", MLFLOW_MAIN.format(auroc=0.95, f1=0.9), "ranked")
    assert platform.wait_status(better, first)["status"] == "completed"

    board = platform.instance.home / "site" / "leaderboard.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if board.exists() and "better" in board.read_text():
            break
        time.sleep(0.3)
    rows = [r for b in json.loads(board.read_text())["benchmarks"] if b["benchmark"] == "ranked/pcb1"
            for r in b["ranking"]]
    assert [(r["user"], r["submission"]) for r in rows] == [(first, "better"), (second, "theirs")]


def test_jobs_api_errors(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform(workers=0, users=2)
    owner, other = list(platform.instance.tokens)
    job_id = platform.submit(platform.client(tmp_path, owner), "tiny", MLFLOW_MAIN.format(auroc=0.5, f1=0.5))
    time.sleep(1)
    assert platform.api("GET", f"/jobs/{job_id}/status", other).status_code == 403
    assert platform.api("GET", f"/jobs/{'0' * 32}/status", owner).status_code == 404
    missing = httpx.get(f"{platform.base_url}/jobs", timeout=10)
    assert missing.status_code == 401 and "detail" in missing.json()
    bad = httpx.get(f"{platform.base_url}/jobs", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 401
    malformed = platform.api("POST", "/jobs", owner, json={"submission_id": "x"})
    assert malformed.status_code == 400 and "submission_id" in malformed.json()["detail"]


@pytest.mark.anomalib
@pytest.mark.slow
@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_padim_example_through_the_whole_pipeline(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    """The real example (anomalib PaDiM, CPU) on a generated VisA-like set: push, run, MLflow, leaderboard."""
    platform = make_platform(limits={"job_timeout_seconds": 900})
    data = generate_dataset(tmp_path / "visa-real", layout="visa", categories=("pcb1",))
    platform.instance.cli("dataset", "add", "visa", str(data))  # while serving: no restart needed
    user = next(iter(platform.instance.tokens))
    git = platform.client(tmp_path, user)
    shutil.copytree(EXAMPLE, git.workdir / "padim")
    git.commit("PaDiM example")
    code, out = git.push(f"users/{user}")
    assert code == 0, out
    job_id = next(line.split(" job ", 1)[1].split()[0] for line in out.splitlines() if "padim: job " in line)

    job = platform.wait_status(job_id, user, timeout=900)
    assert job["status"] == "completed", (job, platform.api("GET", f"/jobs/{job_id}/logs", user).text[-3000:])
    assert job["metrics"]["auroc"] >= 0.9 and 0 <= job["metrics"]["f1_score"] <= 1
    run, _ = run_tags(platform, job)
    assert run.data.tags["leadersboard.method"] == "PaDiM" and run.data.params["backbone"] == "resnet18"
    board = platform.instance.home / "site" / "leaderboard.json"
    deadline = time.monotonic() + 60
    while not (board.exists() and job_id in board.read_text()) and time.monotonic() < deadline:
        time.sleep(0.5)
    rows = [r for b in json.loads(board.read_text())["benchmarks"] for r in b["ranking"] if r["job_id"] == job_id]
    assert rows and rows[0]["method"] == "PaDiM"


TWO_RUNS_MAIN = '''import mlflow


def main():
    mlflow.set_experiment("sweep")
    for lr, auroc in ((0.1, 0.7), (0.01, 0.88)):
        with mlflow.start_run(run_name=f"lr={lr}"):
            mlflow.log_param("lr", lr)
            mlflow.log_metric("auroc", auroc)
            mlflow.log_metric("f1_score", auroc - 0.1)


if __name__ == "__main__":
    main()
'''

# Hostile: points its run's artifact folder at the platform's instance folder after logging.
def test_several_runs_nest_under_the_job(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform()
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "sweep", TWO_RUNS_MAIN)
    job = platform.wait_status(job_id, user)
    assert job["status"] == "completed", job
    assert job["metrics"]["auroc"] == pytest.approx(0.88)  # the last run that logged auroc
    run, client = run_tags(platform, job)
    children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert sorted(c.data.params["lr"] for c in children) == ["0.01", "0.1"]
    assert all(c.info.status == "FINISHED" for c in children)


def test_artifacts_only_from_inside_the_sandbox(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform()
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "sneaky", EXFILTRATING_MAIN)
    job = platform.wait_status(job_id, user)
    run, client = run_tags(platform, job)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"leadersboard"}, "files outside the sandbox were copied into MLflow"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "leadersboard")} == {"leadersboard/job.log"}


def test_leaderboard_is_served(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform()
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "tiny", MLFLOW_MAIN.format(auroc=0.77, f1=0.5))
    assert platform.wait_status(job_id, user)["status"] == "completed"
    deadline = time.monotonic() + 30
    while True:
        page = httpx.get(f"{platform.base_url}/leaderboard/", timeout=10)
        if page.status_code == 200 and user in page.text:
            break
        assert time.monotonic() < deadline, page.status_code
        time.sleep(0.3)
    assert "text/html" in page.headers["content-type"]
    board = httpx.get(f"{platform.base_url}/leaderboard/leaderboard.json", timeout=10).json()
    assert any(r["job_id"] == job_id for b in board["benchmarks"] for r in b["ranking"])


NETWORK_MAIN = '''import socket

import mlflow


def main():
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
        print("network: reachable")
    except OSError as exc:
        print(f"network: blocked ({{exc.__class__.__name__}})")
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.5)


if __name__ == "__main__":
    main()
'''


def test_submissions_have_no_network(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    """The platform's own API port, on loopback, is out of a submission's reach."""
    platform = make_platform()
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), "curious", NETWORK_MAIN.format(port=platform.port))
    assert platform.wait_status(job_id, user)["status"] == "completed"
    log = platform.api("GET", f"/jobs/{job_id}/logs", user).text
    assert "network: none" in log
    assert "network: blocked" in log and "network: reachable" not in log
