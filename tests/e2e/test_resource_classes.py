"""Resource classes with real workers: a `large` job waits (its place in the queue shown, the push
saying that no live worker takes the class) while only a `small` worker runs, which takes the small
jobs queued after it; the large one starts when a `large` worker joins."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support.instances import LEADERSBOARD
from support.platform import CONFIG, MLFLOW_MAIN, Platform

pytestmark = [pytest.mark.slow]


def test_a_large_job_waits_for_a_large_worker(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform(workers=0)
    assert LEADERSBOARD

    def worker(cls: str) -> subprocess.Popen[bytes]:
        with platform.log_path.open("ab") as log:
            proc = subprocess.Popen([LEADERSBOARD, "worker", "--resource-class", cls], env=platform.env(),
                                    stdout=log, stderr=subprocess.STDOUT)
        platform.extra_workers.append(proc)  # stopped with the platform
        return proc

    worker("small")
    platform.healthz_until(lambda body: body.get("workers") == "ok" and body.get("sandbox") != "none seen",
                           timeout=120)
    user = next(iter(platform.instance.tokens))
    git = platform.client(tmp_path, user)
    main = MLFLOW_MAIN.format(auroc=0.6, f1=0.5)

    def push(folder: str, cls: str) -> tuple[str, str]:
        git.commit(folder, {"main.py": main, "config.yaml": CONFIG.format(dataset="visa")}, folder)
        code, out = git.push(f"users/{user}", f"resource_class={cls}")
        assert code == 0, out
        return next(line.split(" job ", 1)[1].split()[0] for line in out.splitlines() if f"{folder}: job " in line), out

    large, said = push("big", "large")
    assert "no live worker takes resource class 'large' now (they take small)" in said, said
    medium = platform.submit(git, "mid", main)  # no class named: the instance's default, medium
    small, said = push("tiny", "small")
    assert "note:" not in said, said
    assert platform.wait_status(small, user, timeout=300)["status"] == "completed"
    for job_id, cls in ((large, "large"), (medium, "medium")):
        waiting = platform.status(job_id, user)
        assert (waiting["status"], waiting["resource_class"], waiting["queue_position"]) == ("pending", cls, 1)
    worker("large")
    job = platform.wait_status(large, user, timeout=300)
    assert job["status"] == "completed" and "queue_position" not in job, job
    assert platform.status(medium, user)["status"] == "pending"  # no worker takes medium
