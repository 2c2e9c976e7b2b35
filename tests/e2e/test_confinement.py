"""The process executor's jail, tried for real: a root worker (`leadersboard serve`, real Redis, real
git over HTTP) and submissions that attack the instance, the host and other jobs the ways that worked
before jobs were confined. Every attempt must fail and the job must still end as it should.

The instance is made readable (and the data set and site writable) for everyone first: what stops
the job must be the jail, not the folders' permissions.

And an unprivileged worker (`serve` in a user namespace where it is not root): jobs run unconfined,
and `serve`, the job log and /healthz say so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from leadersboard.contract import sandbox_key
from leadersboard.local.redis_server import RedisServer, start_redis
from leadersboard.runner.cgroups import CgroupTree, ResourceLimits
from leadersboard.runner.containers import instance_label

from support.hostile import ALLOCATE_MAIN, DAEMON_MAIN, ESCAPES_MAIN, FILL_MAIN, HOSTILE_MAIN
from support.instances import create_instance, unique_user
from support.platform import CONFIG, FORK_MAIN, MLFLOW_MAIN, Platform, processes_with
from support.shared import SessionMlflow

MEMORY = "1g"
TINY_MEMORY = "384m"  # a class's own memory, under the instance's limit
PIDS = 128
SCRATCH_MIB = 256
OTHER_JOB = "someone-else"  # another job's scratch folder (not named like a job id: the reconciler keeps it)

@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The module's platforms outlive a test: a Redis of their own, which the per-test flush spares."""
    server = start_redis(tmp_path_factory.mktemp("jail-redis"), appendonly=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jailed(tmp_path_factory: pytest.TempPathFactory, own_redis: RedisServer) -> Iterator[Platform]:
    """A root worker with small job limits, tracking jobs in the instance's own MLflow store."""
    if os.geteuid() != 0:
        pytest.skip("the jail needs a root worker")
    inst = create_instance(tmp_path_factory.mktemp("jail"), users=())
    document = yaml.safe_load(inst.config_path.read_text())
    document["limits"].update({"job_memory": MEMORY, "job_pids": PIDS, "job_cpus": 1, "job_shm_size": "64m",
                               "job_scratch_size": f"{SCRATCH_MIB}m"})
    document["runner"].update({"heartbeat_seconds": 1, "reconcile_seconds": 1})
    document["resource_classes"] = {"default": "medium", "classes": {  # medium: cut down to the limits above
        "medium": {"cpus": 4, "memory": "16g", "gpus": 1, "time_limit_seconds": 3600},
        "tiny": {"cpus": 1, "memory": TINY_MEMORY, "gpus": 0, "time_limit_seconds": 600}}}
    inst.config_path.write_text(yaml.safe_dump(document))
    other = inst.home / "scratch" / OTHER_JOB
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("another job's secret")
    (inst.home / "site").mkdir()
    subprocess.run(["chmod", "-R", "a+rX", str(inst.home), str(data_folder(inst.home))], check=True)
    subprocess.run(["chmod", "a+w", str(inst.home / "site"), str(data_folder(inst.home) / "pcb1")], check=True)
    platform = Platform(inst, own_redis.url, inst.mlflow_uri, workers=1).start()
    yield platform
    platform.stop()


def data_folder(home: Path) -> Path:
    """The data set `visa` that `create_instance` registers, next to the instance folder."""
    return home.parent / "data" / "visa"


def run_to_end(platform: Platform, tmp_path: Path, folder: str, main: str,
               resource_class: str | None = None) -> tuple[dict[str, Any], str]:
    """Push `main` as `folder` (as a new user, of `resource_class` if given) and wait for its job's end:
    (status, log)."""
    user = unique_user()
    platform.instance.add_user(user)
    git = platform.client(tmp_path, user)
    if resource_class is None:
        job_id = platform.submit(git, folder, main)
    else:
        git.commit(f"submit {folder}", {"main.py": main, "config.yaml": CONFIG.format(dataset="visa")}, folder)
        code, out = git.push(f"users/{user}", f"resource_class={resource_class}")
        assert code == 0, out
        job_id = next(line.split(" job ", 1)[1].split()[0] for line in out.splitlines() if f"{folder}: job " in line)
    job = platform.wait_status(job_id, user, timeout=120)
    return job, platform.api("GET", f"/jobs/{job_id}/logs", user).text


def test_a_hostile_submission_reaches_nothing(jailed: Platform, tmp_path: Path, mlflow_server: SessionMlflow) -> None:
    home, data = jailed.instance.home, data_folder(jailed.instance.home)
    assert jailed.redis_url
    redis_port = int(jailed.redis_url.rsplit(":", 1)[1].split("/")[0])
    main = (HOSTILE_MAIN.replace("HOME, DATA", f"{str(home)!r}, {str(data)!r}").replace("OTHER", OTHER_JOB)
            .replace("API", str(jailed.port)).replace("REDIS", str(redis_port))
            .replace("MLFLOW", str(int(mlflow_server.url.rsplit(":", 1)[1]))))
    job, log = run_to_end(jailed, tmp_path, "hostile", main)

    assert job["status"] == "completed", (job, log)
    assert job["metrics"]["auroc"] == pytest.approx(0.77)
    attempts = [line for line in log.splitlines() if line.split(":")[0] in {
        "read config", "read database", "read repository", "list repository", "read mlflow store",
        "read other job", "write data set", "write data here", "write site", "write instance",
        "reach api", "reach redis", "reach mlflow", "reach internet"}]
    assert len(attempts) == 14, log
    assert all(": refused (" in line for line in attempts), "\n".join(attempts)
    assert "data: ['Data']" in log  # its own data set, read-only, is there
    assert "sandbox: confined (user" in log and "network: none" in log
    assert not list(data.rglob("owned")) and not (home / "owned").exists() and not (home / "site" / "owned").exists()


def test_no_way_out_through_proc(jailed: Platform, tmp_path: Path) -> None:
    """setns into the parent's network namespace and reading another process's environment: the job
    sees only its own processes, and the jail's first process (root) is out of reach."""
    assert jailed.process is not None
    main = ESCAPES_MAIN.replace("SERVE", str(jailed.process.pid)).replace("API", str(jailed.port))
    job, log = run_to_end(jailed, tmp_path, "escape", main)

    assert job["status"] == "completed", (job, log)
    pids = json.loads(next(line for line in log.splitlines() if line.startswith("visible pids:")).split(":", 1)[1])
    assert pids[0] == 1 and len(pids) <= 3, pids  # the jail's init, the job (and a helper it just started)
    tries = [line for line in log.splitlines() if line.startswith(("setns ", "environ "))]
    assert tries and all(": refused (" in line for line in tries), "\n".join(tries)
    pid_1 = next(line for line in log.splitlines() if line.startswith("pid 1 runs: "))
    assert "leadersboard.runner.jail" in pid_1 and "hidden" not in pid_1, pid_1  # its spec came on stdin
    assert "reach api: refused" in log and "mount: refused" in log
    assert "REDIS_URL" not in log and str(jailed.redis_url) not in log


def test_a_daemon_dies_with_its_job(jailed: Platform, tmp_path: Path) -> None:
    marker = f"lb-daemon-{unique_user()}"
    job, log = run_to_end(jailed, tmp_path, "daemon", DAEMON_MAIN.replace("MARKER", marker))
    assert job["status"] == "completed", (job, log)
    assert "daemon running" in log
    assert processes_with(marker) == [], "a daemon outlived its job"


def test_memory_over_the_limit_ends_the_job_out_of_memory(jailed: Platform, tmp_path: Path) -> None:
    job, log = run_to_end(jailed, tmp_path, "greedy", ALLOCATE_MAIN)
    assert job["status"] == "failed"
    assert f"out of memory: stopped for using more than the sandbox's {MEMORY}" in job["error"], (job, log)
    assert "holding 256 MiB" in log and "holding 1024 MiB" not in log


def test_a_class_smaller_than_the_limits_ends_its_job_at_its_own_memory(jailed: Platform, tmp_path: Path) -> None:
    job, log = run_to_end(jailed, tmp_path, "greedy-tiny", ALLOCATE_MAIN, resource_class="tiny")
    assert job["status"] == "failed"
    assert f"out of memory: stopped for using more than the sandbox's {TINY_MEMORY}" in job["error"], (job, log)
    assert "holding 256 MiB" in log and "holding 512 MiB" not in log


def test_a_disk_fill_stops_at_the_scratch_limit(jailed: Platform, tmp_path: Path) -> None:
    job, log = run_to_end(jailed, tmp_path, "filler", FILL_MAIN)
    assert job["status"] == "completed", (job, log)
    line = next(line for line in log.splitlines() if line.startswith(("disk full", "wrote")))
    assert line.startswith("disk full after") and "(ENOSPC)" in line, line
    assert int(line.split()[3]) < SCRATCH_MIB


def test_a_fork_bomb_meets_the_pids_limit(jailed: Platform, tmp_path: Path) -> None:
    job, log = run_to_end(jailed, tmp_path, "forky", FORK_MAIN)
    assert job["status"] == "completed", (job, log)
    refused = next(line for line in log.splitlines() if line.startswith("fork refused:"))
    assert "BlockingIOError after" in refused, refused
    assert int(refused.split(" after ")[1].split()[0]) < PIDS
    assert httpx.get(f"{jailed.base_url}/healthz", timeout=10).status_code == 200


def test_the_reconciler_ends_what_an_ended_job_left(jailed: Platform) -> None:
    """A control group and a scratch folder of a job that is not active (its worker died, say): the
    reconciler kills what still runs in the group and removes both."""
    job_id = "e" * 32
    group = CgroupTree.find(instance_label(jailed.instance.home.resolve())).job(job_id)
    group.create(ResourceLimits(memory_bytes=256 * 1024**2, cpus=1, pids=16))
    scratch = jailed.instance.home / "scratch" / job_id
    scratch.mkdir()
    left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    for procs in group.procs_files:
        Path(procs).write_text(str(left.pid))
    try:
        left.wait(timeout=30)
    finally:
        left.kill()
    deadline = time.monotonic() + 30
    said = f"removed what ended job {job_id} left on this host"
    # The log line follows the removal: read the log until it is there too (on a busy host, a moment later).
    while any(folder.exists() for folder in group.folders) or scratch.exists() or said not in jailed.log():
        assert time.monotonic() < deadline, "the reconciler left the group or the scratch folder, or did not say so"
        time.sleep(0.2)
    assert left.returncode == -signal.SIGKILL


def test_healthz_and_serve_say_jobs_are_confined(jailed: Platform) -> None:
    answer = httpx.get(f"{jailed.base_url}/healthz", timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["sandbox"] == "confined", body
    assert all("process executor, confined (user" in text for text in body["sandboxes"].values()), body
    assert "process executor: jobs run confined (user" in jailed.log()
    assert "WARNING: process executor" not in jailed.log()


# ------------------------------------------------------------------------------- an unprivileged worker


def test_an_unprivileged_worker_says_jobs_run_unconfined(tmp_path_factory: pytest.TempPathFactory,
                                                          tmp_path: Path) -> None:
    """`serve` in a user namespace where it is uid 65534: it cannot jail jobs, and says so everywhere,
    while /healthz still answers 200."""
    inst = create_instance(tmp_path_factory.mktemp("unprivileged"), users=())
    redis_server = start_redis(tmp_path_factory.mktemp("unprivileged-redis"), appendonly=False)
    platform = Platform(inst, redis_server.url, inst.mlflow_uri, workers=1,
                        wrapper=("unshare", "--user", "--map-user=65534", "--map-group=65534"))
    try:
        platform.start()
        assert "WARNING: process executor: jobs run unconfined (the worker is not root" in platform.log()
        job, log = run_to_end(platform, tmp_path, "tiny", MLFLOW_MAIN.format(auroc=0.6, f1=0.5))
        assert job["status"] == "completed", (job, log)
        assert "sandbox: unconfined (the worker is not root" in log
        body = platform.healthz_until(lambda body: body.get("sandbox") == "unconfined")
        assert body["sandbox"] == "unconfined" and body["status"] == "ok", body
    finally:
        platform.stop()
        redis_server.stop()


def test_healthz_reports_the_least_confined_worker(make_platform: Callable[..., Platform],
                                                   redis_client: redis.Redis) -> None:
    """Workers of other hosts report through Redis: one unconfined worker makes the answer unconfined."""
    platform = make_platform(workers=0)
    assert httpx.get(f"{platform.base_url}/healthz", timeout=10).json()["sandbox"] == "none seen"
    redis_client.set(sandbox_key("gpu-host:42"), '{"executor": "process", "level": "unconfined", '
                                                  '"summary": "the worker is not root"}', ex=60)
    redis_client.set(sandbox_key("other:7"), '{"executor": "docker", "level": "confined", "summary": "image x"}',
                     ex=60)
    body = platform.healthz_until(lambda body: body.get("sandbox") == "unconfined")
    assert body["sandbox"] == "unconfined" and body["status"] == "ok", body
    assert body["sandboxes"]["gpu-host:42"] == "process executor, unconfined (the worker is not root)"
