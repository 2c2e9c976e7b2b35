"""What the leaderboard shows comes only from the job's own run, written by the platform: forged
platform tags, out-of-range scores, a logged runtime, hard-linked artifacts and oversized stores
cannot reach it. A real `serve` with a worker, a real MLflow server, real git."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadersboard.local.redis_server import RedisServer

from support.platform import Platform, new_platform, run_tags
from support.shared import SessionMlflow

FORGED_MAIN = '''import mlflow


def main():
    with mlflow.start_run():
        mlflow.set_tag("leadersboard.user", "bob")
        mlflow.set_tag("leadersboard.benchmark", "visa/other")
        mlflow.set_tag("mlflow.user", "bob")
        mlflow.log_metric("runtime_seconds", 0.001, step=10**9)
        mlflow.log_metric("auroc", {auroc})
        mlflow.log_metric("f1_score", 0.5)
        with open("notes.txt", "w") as f:
            f.write("mine")
        with open("../home/outside.txt", "w") as f:
            f.write("not the working folder's")
        mlflow.log_artifact("notes.txt")
        # Straight into the run's artifact folder: a second name for a file outside the working folder.
        from urllib.parse import urlparse
        import os
        artifacts = urlparse(mlflow.get_artifact_uri()).path
        os.makedirs(artifacts + "/out")
        os.link("../home/outside.txt", artifacts + "/out/linked.txt")
        with open(artifacts + "/out/own.txt", "w") as f:
            f.write("own")


if __name__ == "__main__":
    main()
'''

HUGE_STORE_MAIN = '''import sqlite3

import mlflow


def main():
    with mlflow.start_run() as run:
        mlflow.log_metric("auroc", 0.9)
    # A million metric rows straight into the local store, as a hostile job could write them.
    store = sqlite3.connect("../mlflow.db")
    rows = (("loss", 0.5, 1700000000000 + n, run.info.run_id, n, 0) for n in range(1_000_000))
    store.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
                      rows)
    store.commit()
    print("wrote", store.execute("SELECT COUNT(*) FROM metrics").fetchone()[0], "rows")


if __name__ == "__main__":
    main()
'''


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
             mlflow_server: SessionMlflow) -> Iterator[Platform]:
    started = new_platform(tmp_path_factory.mktemp("integrity"), redis_server.url, mlflow_server.url, users=2,
                           limits={"max_active_jobs": 10, "submissions_per_hour": 100})
    try:
        yield started.start()
    finally:
        started.stop()


def submit(platform: Platform, tmp_path: Path, folder: str, main: str) -> tuple[str, dict[str, Any]]:
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), folder, main, topic=folder)
    return user, platform.wait_status(job_id, user, timeout=180)


def test_forged_tags_a_logged_runtime_and_linked_artifacts_change_nothing(platform: Platform,
                                                                          tmp_path: Path) -> None:
    user, job = submit(platform, tmp_path, "forger", FORGED_MAIN.format(auroc=0.8))
    assert job["status"] == "completed", job
    assert job["user"] == user and job["benchmark"] == "visa/pcb1"
    assert job["metrics"]["runtime_seconds"] > 0.01  # measured by the platform, not the logged 0.001
    run, client = run_tags(platform, job)
    tags = run.data.tags
    assert tags["leadersboard.user"] == user and tags["leadersboard.benchmark"] == "visa/pcb1"
    assert tags["mlflow.user"] == user
    history = client.get_metric_history(run.info.run_id, "runtime_seconds")
    assert len(history) == 1 and history[0].value > 0.01
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "out")}
    assert artifacts == {"out/own.txt"}, "a hard-linked file was carried out"
    log = platform.api("GET", f"/jobs/{job['job_id']}/logs", user).text
    assert "not copied: runtime_seconds (measured by the platform itself)" in log


@pytest.mark.parametrize(("auroc", "shown"), [(5.0, "5.0"), (-0.1, "-0.1"), (float("nan"), "nan")])
def test_a_ranked_metric_out_of_range_fails_the_job(platform: Platform, tmp_path: Path, auroc: float,
                                                    shown: str) -> None:
    main = FORGED_MAIN.format(auroc=f"float('{auroc}')")
    _, job = submit(platform, tmp_path, f"out-of-range-{abs(hash(shown)) % 1000}", main)
    assert job["status"] == "failed"
    assert job["error"].startswith(f"the logged auroc is {shown}, outside [0, 1]"), job["error"]


def test_a_store_of_a_million_metric_rows_fails_the_job_at_once(platform: Platform, tmp_path: Path) -> None:
    user, job = submit(platform, tmp_path, "huge", HUGE_STORE_MAIN)
    assert job["status"] == "failed"
    assert job["error"] == ("the job logged 1,000,001 metric values, over the platform's limit of 200,000 "
                            "(runner.max_metric_points); log fewer steps or fewer metrics")
    log = platform.api("GET", f"/jobs/{job['job_id']}/logs", user).text
    assert "wrote 1000001 rows" in log
    # Refused by counting, not by copying: the job ended within seconds of its code.
    run, client = run_tags(platform, job)
    assert client.get_metric_history(run.info.run_id, "loss") == []
