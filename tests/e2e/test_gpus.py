"""`leadersboard worker --gpus 0,1`: a worker process per GPU, each job on its own device, two jobs
at the same time. On this machine the devices are names only (the process executor sets
CUDA_VISIBLE_DEVICES whether or not the host has them); on real hardware, benchmarks/gpu_in_jail.py
runs a job per GPU through the jail (measured on an H200: one device each, as the sandbox user, at the
speed of a plain run)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from support.instances import LEADERSBOARD
from support.platform import CONFIG, Platform

pytestmark = [pytest.mark.slow]

DEVICE_MAIN = '''import os
import time

import mlflow


def main():
    print("device=" + os.environ.get("CUDA_VISIBLE_DEVICES", "none"), flush=True)
    time.sleep(8)
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.5)


if __name__ == "__main__":
    main()
'''


CLASSES = {"default": "medium", "classes": {
    "medium": {"cpus": 4, "memory": "16g", "gpus": 1, "time_limit_seconds": 3600},
    "cpu": {"cpus": 1, "memory": "4g", "gpus": 0, "time_limit_seconds": 600}}}


@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_two_jobs_run_at_once_each_on_its_own_device(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform(workers=0, classes=CLASSES)
    assert LEADERSBOARD
    with platform.log_path.open("ab") as log:
        group = subprocess.Popen([LEADERSBOARD, "worker", "--gpus", "0,1"], env=platform.env(), stdout=log,
                                 stderr=subprocess.STDOUT)
    try:
        user = next(iter(platform.instance.tokens))
        git = platform.client(tmp_path, user)
        ids = [platform.submit(git, f"on-gpu-{n}", DEVICE_MAIN) for n in range(2)]
        jobs = [platform.wait_status(job_id, user, timeout=300) for job_id in ids]
        assert [job["status"] for job in jobs] == ["completed", "completed"], (jobs, platform.log()[-3000:])
        logs = [platform.api("GET", f"/jobs/{job_id}/logs", user).text for job_id in ids]
        devices = sorted(line for text in logs for line in text.splitlines() if line.startswith("device="))
        assert devices == ["device=0", "device=1"], logs
        spans = [(datetime.fromisoformat(job["started_at"]), datetime.fromisoformat(job["finished_at"]))
                 for job in jobs]
        assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans  # they ran at the same time
        # A CPU class's job sees no GPU, though a GPU worker runs it.
        git.commit("on-cpu", {"main.py": DEVICE_MAIN, "config.yaml": CONFIG.format(dataset="visa")}, "on-cpu")
        code, out = git.push(f"users/{user}", "resource_class=cpu")
        assert code == 0, out
        cpu_job = next(line.split(" job ", 1)[1].split()[0] for line in out.splitlines() if "on-cpu: job " in line)
        assert platform.wait_status(cpu_job, user, timeout=300)["status"] == "completed"
        cpu_log = platform.api("GET", f"/jobs/{cpu_job}/logs", user).text
        assert [line for line in cpu_log.splitlines() if line.startswith("device=")] == ["device="], cpu_log
        assert "class cpu: 1 CPU(s), memory 4g, no GPU" in cpu_log, cpu_log
    finally:
        group.send_signal(signal.SIGTERM)
        assert group.wait(120) == 0, platform.log()[-3000:]


def test_gpus_are_checked_before_anything_starts(make_platform: Callable[..., Platform]) -> None:
    platform = make_platform(workers=0)
    assert LEADERSBOARD
    for wrong in ("0,0", "zero", ","):
        result = subprocess.run([LEADERSBOARD, "worker", "--gpus", wrong], env=platform.env(), capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode != 0 and "--gpus" in result.stderr, result.stderr
