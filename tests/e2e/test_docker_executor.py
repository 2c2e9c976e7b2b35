"""The docker executor against a real Docker engine: a real image built by `leadersboard image build`
(debootstrap from this machine's apt mirror, no registry), real `leadersboard serve` with a worker,
real MLflow server, real git over HTTP.

Docker must be here (scripts/install.sh --test installs docker.io and debootstrap): when no engine
answers, the session starts `dockerd` itself, and the last session using it stops it. Nothing is skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from leadersboard.examples import PADIM as EXAMPLE
from leadersboard.local.datagen import generate_dataset
from leadersboard.local.redis_server import RedisServer, start_redis
from leadersboard.runner.containers import INSTANCE_LABEL, JOB_LABEL, instance_label
from leadersboard.runner.docker_executor import ContainerSpec, create_args
from leadersboard.runner.image import apt_source
from leadersboard.runner.sandbox import Sandbox

from support.hostile import DAEMON_MAIN, ESCAPES_MAIN, FILL_MAIN, LABEL_WALKER
from support.instances import LEADERSBOARD, Instance, create_instance, run_cli, unique_user
from support.platform import (
    EXFILTRATING_MAIN,
    FORK_MAIN,
    GREEDY_MAIN,
    MLFLOW_MAIN,
    SLEEPING_MAIN,
    Platform,
    processes_with,
    run_tags,
)
from support.shared import SessionMlflow, alive

IMAGE = "leadersboard-sandbox-test"
ANOMALIB_IMAGE = "leadersboard-sandbox-test-anomalib"
IMAGE_BUILD_SECONDS = 900
DOCKERD_START_SECONDS = 60
ENGINE_STATE = Path(tempfile.gettempdir()) / "leadersboard-test-dockerd"
DOCKERD_PID_FILE = Path("/var/run/docker.pid")  # dockerd's own
SANDBOX_UID = 10001
MEMORY = "512m"
PIDS = 128
SCRATCH = "256m"

# ------------------------------------------------------------------------------------ engine, image


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def _engine_lock() -> Iterator[Path]:
    """The state test sessions share about a dockerd that tests started (several may run at once)."""
    ENGINE_STATE.mkdir(exist_ok=True)
    with (ENGINE_STATE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield ENGINE_STATE


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The Docker engine. When none answers, the session starts `dockerd`; the last test session
    still using a dockerd that tests started stops it at the end (an engine of the system is left alone)."""
    me = str(os.getpid())
    with _engine_lock() as state:
        (state / f"session-{me}").touch()
        if not _docker_answers():
            _start_dockerd(state, tmp_path_factory.mktemp("dockerd") / "dockerd.log")
    try:
        yield
    finally:
        with _engine_lock() as state:
            (state / f"session-{me}").unlink(missing_ok=True)
            others = [p for p in state.glob("session-*") if alive(int(p.name.split("-", 1)[1]))]
            pid_file = state / "dockerd.pid"
            if not others and pid_file.exists():
                _stop_dockerd(int(pid_file.read_text()))
                pid_file.unlink()


def _start_dockerd(state: Path, log_path: Path) -> None:
    dockerd = shutil.which("dockerd")
    if dockerd is None or shutil.which("docker") is None:
        pytest.fail("Docker is not installed: scripts/install.sh --test installs docker.io")
    with log_path.open("wb") as log:
        # Not this session's child (any session may stop it); no bridge and no iptables: jobs run
        # with --network none, and this works in a VM without them.
        subprocess.run(["setsid", "--fork", dockerd, "--iptables=false", "--bridge=none"], stdout=log,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=True, timeout=30)
    deadline = time.monotonic() + DOCKERD_START_SECONDS
    while not _docker_answers():
        if time.monotonic() > deadline:
            pytest.fail(f"dockerd did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    (state / "dockerd.pid").write_text(DOCKERD_PID_FILE.read_text().strip())


def _stop_dockerd(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def build_image(name: str, *options: str) -> str:
    """`leadersboard image build --name NAME`, as an operator runs it; a no-op when an image of the same
    recipe exists from an earlier run."""
    assert LEADERSBOARD
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")}
    result = subprocess.run([LEADERSBOARD, "image", "build", "--name", name, *options], capture_output=True,
                            text=True, env=env, timeout=IMAGE_BUILD_SECONDS, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return name


@pytest.fixture(scope="session")
def sandbox_image(docker_engine: None) -> str:
    """The small sandbox image: MLflow and PyYAML (~1.5 min to build, 1 GB)."""
    return build_image(IMAGE)


@pytest.fixture(scope="session")
def anomalib_image(docker_engine: None) -> str:
    """The image models need: also torch, torchvision, anomalib (~3.5 min to build, 7 GB)."""
    return build_image(ANOMALIB_IMAGE, "--with-anomalib")


def containers_of(job_id: str, full: bool = False) -> list[str]:
    """Every container of the job, running or not (`full`: their whole ids)."""
    out = subprocess.run(["docker", "ps", "--all", "--quiet", *(["--no-trunc"] if full else []),
                          "--filter", f"label={JOB_LABEL}={job_id}"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return out.split()


# ---------------------------------------------------------------------------------------- platforms


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], RedisServer]]:
    """`own_redis()`: a Redis for one platform of this module. The module's platform lives longer than
    a test (the shared Redis is flushed before each one), and two alive at once must not share a queue."""
    started: list[RedisServer] = []

    def start() -> RedisServer:
        started.append(start_redis(tmp_path_factory.mktemp("docker-redis"), appendonly=False))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def start_platform(base: Path, redis_url: str, mlflow_url: str | None, image: str,
                   limits: dict[str, int] | None = None, flag: bool = False,
                   job: dict[str, str | int] | None = None) -> Platform:
    """An instance whose worker runs jobs in containers, with small limits: chosen by the config
    (`runner.executor: docker`), or with `flag` by `serve --executor docker`. Without `mlflow_url`,
    jobs are tracked in the instance's own SQLite store."""
    inst = create_instance(base, limits=limits, users=())
    document = yaml.safe_load(inst.config_path.read_text())
    document["limits"].update({"job_memory": MEMORY, "job_pids": PIDS, "job_cpus": 1, "job_shm_size": "64m",
                               "job_scratch_size": SCRATCH, **(job or {})})
    document["runner"].update({"executor": "process" if flag else "docker", "docker_image": image,
                               "sandbox_uid": SANDBOX_UID, "heartbeat_seconds": 1, "reconcile_seconds": 1})
    inst.config_path.write_text(yaml.safe_dump(document))
    return Platform(inst, redis_url, mlflow_url or inst.mlflow_uri, workers=1,
                    serve_args=("--executor", "docker") if flag else ()).start()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, mlflow_server: SessionMlflow,
             sandbox_image: str) -> Iterator[Platform]:
    """One platform for the jobs that need no limits of their own (one worker: they run one by one),
    started as `leadersboard serve --executor docker`, tracking jobs in the session's MLflow server."""
    redis = start_redis(tmp_path_factory.mktemp("docker-redis"), appendonly=False)
    started = start_platform(tmp_path_factory.mktemp("docker-platform"), redis.url, mlflow_server.url,
                             sandbox_image, flag=True)
    try:
        yield started
    finally:
        started.stop()
        redis.stop()


@pytest.fixture
def make_platform(tmp_path_factory: pytest.TempPathFactory, own_redis: Callable[[], RedisServer],
                  sandbox_image: str) -> Iterator[Callable[..., Platform]]:
    """Platforms with limits of their own, alive next to the module's: their own Redis and MLflow store
    (a reconciler ends every running job of its MLflow whose heartbeat its Redis does not hold)."""
    started: list[Platform] = []

    def make(limits: dict[str, int] | None = None, image: str = sandbox_image,
             job: dict[str, str | int] | None = None) -> Platform:
        made = start_platform(tmp_path_factory.mktemp("docker-platform"), own_redis().url, None, image,
                              limits, job=job)
        started.append(made)
        return made

    yield make
    for made in started:
        made.stop()


def new_user(platform: Platform) -> str:
    """A participant of their own for each job: a fresh branch, a fresh quota."""
    user = unique_user()
    platform.instance.add_user(user)
    return user


def run_to_end(platform: Platform, tmp_path: Path, folder: str, main: str,
               dataset: str = "visa") -> tuple[str, dict[str, Any], str]:
    """Push `main` as `folder` (as a new user), wait for its job's end; (job id, status, log)."""
    user = new_user(platform)
    job_id = platform.submit(platform.client(tmp_path, user), folder, main, dataset)
    job = platform.wait_status(job_id, user, timeout=120)
    log = platform.api("GET", f"/jobs/{job_id}/logs", user).text
    return job_id, job, log


def job_user(platform: Platform, job_id: str) -> str:
    return str(platform.instance.query("SELECT user FROM jobs WHERE id = ?", job_id)[0]["user"])


def assert_cleaned_up(platform: Platform, job_id: str) -> None:
    assert containers_of(job_id) == [], "the job's container was left behind"
    assert not (platform.instance.home / "scratch" / job_id).exists(), "the scratch folder was left behind"


# -------------------------------------------------------------------------------------------- tests


def test_job_completes_in_a_container(platform: Platform, tmp_path: Path) -> None:
    main = MLFLOW_MAIN.format(auroc=0.93, f1=0.81).replace(
        '    print("done', '    import os\n    print(f"uid={os.getuid()} cwd={os.getcwd()}")\n    print("done')
    job_id, job, log = run_to_end(platform, tmp_path, "boxed", main)

    assert job["status"] == "completed", (job, log)
    assert job["metrics"]["auroc"] == pytest.approx(0.93) and job["metrics"]["runtime_seconds"] > 0
    assert "with the docker executor" in log and "network: none" in log
    assert f"uid={SANDBOX_UID} cwd=/job/work" in log
    assert f"memory {MEMORY} (no swap)" in log

    run, client = run_tags(platform, job)
    assert run.data.params == {"depth": "3"} and run.data.tags["team"] == "blue"
    assert run.data.tags["leadersboard.user"] == job_user(platform, job_id)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == pytest.approx([1, 0.5, 1 / 3])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"notes.txt", "leadersboard"}, "the artifact under /job/work was not copied"
    assert_cleaned_up(platform, job_id)

    board = platform.instance.home / "site" / "leaderboard.json"
    deadline = time.monotonic() + 30
    while not (board.exists() and job_id in board.read_text()) and time.monotonic() < deadline:
        time.sleep(0.3)
    rows = [r for b in json.loads(board.read_text())["benchmarks"] for r in b["ranking"] if r["job_id"] == job_id]
    assert len(rows) == 1 and rows[0]["user"] == job_user(platform, job_id) and rows[0]["submission"] == "boxed"
    assert rows[0]["auroc"] == pytest.approx(0.93)


MODEL_CACHE_MAIN = '''import os

import mlflow


def main():
    print("env", os.environ["TORCH_HOME"], os.environ["HF_HOME"], os.environ["HF_HUB_OFFLINE"])
    checkpoint = os.path.join(os.environ["TORCH_HOME"], "hub", "checkpoints", "resnet18-f37072fd.pth")
    print("weights", open(checkpoint).read())
    try:
        open(checkpoint, "w").write("changed")
        print("write: allowed")
    except OSError as exc:
        print(f"write: refused ({type(exc).__name__})")
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.5)


if __name__ == "__main__":
    main()
'''


def test_the_model_cache_is_mounted_read_only(platform: Platform, tmp_path: Path) -> None:
    """`weights add` (read live by the worker): the container sees the cache read-only, with torch and
    Hugging Face pointed at it and offline."""
    checkpoints = tmp_path / "cache" / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet18-f37072fd.pth").write_text("operator's weights")
    for path in (tmp_path, tmp_path / "cache", tmp_path / "cache" / "torch", checkpoints.parent, checkpoints):
        path.chmod(0o755)
    platform.instance.cli("weights", "add", str(tmp_path / "cache"))
    try:
        _, job, log = run_to_end(platform, tmp_path, "cached", MODEL_CACHE_MAIN)
    finally:
        platform.instance.cli("weights", "remove")
    assert job["status"] == "completed", (job, log)
    assert "env /job/models/torch /job/models/huggingface 1" in log, log
    assert "weights operator's weights" in log and "write: refused (OSError)" in log, log
    assert (checkpoints / "resnet18-f37072fd.pth").read_text() == "operator's weights"


PROBE_MAIN = '''import os
import socket

import mlflow


def attempt(label, action):
    try:
        action()
        print(f"{label}: allowed", flush=True)
    except OSError as exc:
        print(f"{label}: refused ({type(exc).__name__})", flush=True)


def write(path):
    with open(path, "w") as f:
        f.write("x")


def main():
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    print(f"uid={os.getuid()} gid={os.getgid()} caps={status['CapEff'].strip()} "
          f"nnp={status['NoNewPrivs'].strip()}", flush=True)
    attempt("network", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=3).close())
    attempt("write /etc", lambda: write("/etc/owned"))
    attempt("write /opt/venv", lambda: write("/opt/venv/owned"))
    attempt("write /tmp", lambda: write("/tmp/mine"))
    attempt("write work", lambda: write("mine.txt"))
    attempt("write home", lambda: write(os.path.join(os.environ["HOME"], "mine")))
    attempt("write data", lambda: write("pcb1/Data/owned"))
    attempt("move job log", lambda: os.rename("/job/job.log", "/job/moved.log"))
    attempt("move work", lambda: os.rename("/job/work", "/job/elsewhere"))
    print(f"data: {sorted(os.listdir('pcb1'))} at {os.path.realpath('pcb1')}", flush=True)
    print(f"host folder visible: {os.path.exists(HOST_FOLDER)}", flush=True)
    print(f"env: {os.environ['MLFLOW_TRACKING_URI']} {os.environ['HOME']} {os.environ['TMPDIR']}", flush=True)
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.5)


if __name__ == "__main__":
    main()
'''


def test_the_container_confines_the_submission(platform: Platform, tmp_path: Path) -> None:
    home = platform.instance.home
    main = PROBE_MAIN.replace("PORT", str(platform.port)).replace("HOST_FOLDER", repr(str(home)))
    job_id, job, log = run_to_end(platform, tmp_path, "probe", main)

    assert job["status"] == "completed", (job, log)
    assert f"uid={SANDBOX_UID} gid={SANDBOX_UID} caps=0000000000000000 nnp=1" in log
    assert "network: refused" in log, log  # the platform's own port, on this host's loopback
    assert "write /etc: refused" in log and "write /opt/venv: refused" in log  # the read-only root
    assert "write /tmp: allowed" in log and "write work: allowed" in log and "write home: allowed" in log
    assert "write data: refused" in log  # the data set is read-only
    assert "move job log: refused (PermissionError)" in log and "move work: refused (PermissionError)" in log
    assert "data: ['Data'] at /data/pcb1" in log
    assert "host folder visible: False" in log
    assert "env: sqlite:////job/mlflow.db /job/home /job/tmp" in log
    assert str(home) not in log.split("[leadersboard] container", 1)[1]  # no host path reached the submission
    assert not list((platform.instance.home.parent / "data").rglob("owned"))
    assert_cleaned_up(platform, job_id)


def test_the_container_sees_only_its_own_processes(platform: Platform, tmp_path: Path) -> None:
    """Docker's PID namespace and /proc: the host's processes (serve, the worker) are not there to
    read or to join; the container's init, which the job may read, holds only the job's environment."""
    assert platform.process is not None
    main = ESCAPES_MAIN.replace("SERVE", str(platform.process.pid)).replace("API", str(platform.port))
    job_id, job, log = run_to_end(platform, tmp_path, "escape", main)

    assert job["status"] == "completed", (job, log)
    pids = json.loads(next(line for line in log.splitlines() if line.startswith("visible pids:")).split(":", 1)[1])
    assert pids[0] == 1 and len(pids) <= 3, pids
    assert "pid 1 runs: /sbin/docker-init" in log, log
    joins = [line for line in log.splitlines() if line.startswith("setns ")]
    assert joins and all(": refused (" in line for line in joins), "\n".join(joins)
    assert f"environ {platform.process.pid}: refused (FileNotFoundError)" in log
    assert "allowed 'True'" not in log  # no environment it can read holds the Redis address
    assert "reach api: refused" in log and "mount: refused" in log
    assert_cleaned_up(platform, job_id)


def test_a_daemon_dies_with_its_container(platform: Platform, tmp_path: Path) -> None:
    marker = f"lb-daemon-{uuid.uuid4().hex}"
    job_id, job, log = run_to_end(platform, tmp_path, "daemon", DAEMON_MAIN.replace("MARKER", marker))
    assert job["status"] == "completed", (job, log)
    assert "daemon running" in log
    assert processes_with(marker) == [], "a daemon outlived its container"
    assert_cleaned_up(platform, job_id)


def test_a_disk_fill_stops_at_the_scratch_limit(platform: Platform, tmp_path: Path) -> None:
    """/job is the worker's tmpfs of `limits.job_scratch_size`, not the host's disk."""
    job_id, job, log = run_to_end(platform, tmp_path, "filler", FILL_MAIN)
    assert job["status"] == "completed", (job, log)
    line = next(line for line in log.splitlines() if line.startswith(("disk full", "wrote")))
    assert line.startswith("disk full after") and "(ENOSPC)" in line, line
    assert int(line.split()[3]) < int(SCRATCH.rstrip("m"))
    assert "docker executor: jobs run confined (image" in platform.log()
    assert_cleaned_up(platform, job_id)


def test_artifacts_only_from_inside_the_container(platform: Platform, tmp_path: Path) -> None:
    job_id, job, _ = run_to_end(platform, tmp_path, "sneaky", EXFILTRATING_MAIN)
    run, client = run_tags(platform, job)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"leadersboard"}, (
        "files outside the sandbox's working directory were copied into MLflow")
    assert_cleaned_up(platform, job_id)


def test_a_verified_job_in_a_container_finds_no_label(platform: Platform, tmp_path: Path,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    data = generate_dataset(tmp_path_factory.mktemp("data") / "vset-secret-origin", "visa", ("pcb1",),
                            normal=10, anomalous=3, size=32)
    platform.instance.cli("dataset", "add", "vset", str(data), "--scoring", "verified")
    secrets = ["vset-secret-origin", str(platform.instance.home), "Data/Images/Anomaly"]
    job_id, job, log = run_to_end(platform, tmp_path, "walker", LABEL_WALKER.replace("SECRET_NAMES", repr(secrets)),
                                  dataset="vset")
    assert job["status"] == "completed" and job["metrics"]["auroc"] == 0.5, (job, log[-2000:])
    assert "walked; 0 found" in log and "FOUND" not in log, log[-3000:]
    assert "test dir: ['" in log  # it did see its test images, under their opaque names
    assert_cleaned_up(platform, job_id)


def test_a_fork_bomb_meets_the_pids_limit(platform: Platform, tmp_path: Path) -> None:
    job_id, job, log = run_to_end(platform, tmp_path, "forky", FORK_MAIN)
    assert job["status"] == "completed", (job, log)
    refused = next(line for line in log.splitlines() if line.startswith("fork refused:"))
    assert "BlockingIOError after" in refused, refused
    assert int(refused.split(" after ")[1].split()[0]) < PIDS
    assert httpx.get(f"{platform.base_url}/healthz", timeout=10).status_code == 200
    assert_cleaned_up(platform, job_id)


def test_memory_over_the_limit_ends_the_job_out_of_memory(platform: Platform, tmp_path: Path) -> None:
    job_id, job, log = run_to_end(platform, tmp_path, "greedy", GREEDY_MAIN)
    assert job["status"] == "failed"
    assert f"out of memory: stopped for using more than the sandbox's {MEMORY}" in job["error"], job
    assert "holding 64 MiB" in log and "holding 1024 MiB" not in log
    assert_cleaned_up(platform, job_id)


def test_cancel_removes_the_container(platform: Platform, tmp_path: Path) -> None:
    user = new_user(platform)
    marker = f"lb-marker-{uuid.uuid4().hex}"
    job_id = platform.submit(platform.client(tmp_path, user), "sleepy", SLEEPING_MAIN.format(marker=marker))
    deadline = time.monotonic() + 60
    while not processes_with(marker):  # the container's processes are this host's too
        assert time.monotonic() < deadline, platform.log()[-3000:]
        time.sleep(0.2)
    assert len(containers_of(job_id)) == 1
    answer = platform.api("POST", f"/jobs/{job_id}/cancel", user)
    assert answer.status_code == 200, answer.text
    job = platform.wait_status(job_id, user, timeout=60)
    assert job["status"] == "cancelled"
    assert processes_with(marker) == []
    assert_cleaned_up(platform, job_id)


def test_the_time_limit_kills_the_container(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform(limits={"job_timeout_seconds": 5})
    marker = f"lb-marker-{uuid.uuid4().hex}"
    job_id, job, _ = run_to_end(platform, tmp_path, "sleepy", SLEEPING_MAIN.format(marker=marker))
    assert job["status"] == "failed" and "time limit of 5 s" in job["error"], job
    assert processes_with(marker) == []
    assert_cleaned_up(platform, job_id)


def test_a_dead_workers_container_is_removed(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform()
    user = new_user(platform)
    marker = f"lb-marker-{uuid.uuid4().hex}"
    job_id = platform.submit(platform.client(tmp_path, user), "sleepy", SLEEPING_MAIN.format(marker=marker))
    deadline = time.monotonic() + 60
    while not containers_of(job_id) or not processes_with(marker):
        assert time.monotonic() < deadline, platform.log()[-3000:]
        time.sleep(0.2)
    first = containers_of(job_id, full=True)
    os.kill(worker_pid(platform), signal.SIGKILL)

    # The dead worker's container goes, and the job runs again once (in a container of its own).
    deadline = time.monotonic() + 90
    while set(first) & set(containers_of(job_id, full=True)) or platform.status(job_id, user)["attempts"] < 2:
        assert time.monotonic() < deadline, f"the dead worker's container stayed:\n{platform.log()[-3000:]}"
        time.sleep(0.3)
    assert platform.api("POST", f"/jobs/{job_id}/cancel", user).status_code == 200
    assert platform.wait_status(job_id, user, ("cancelled",), timeout=60)["attempts"] == 2
    deadline = time.monotonic() + 30
    while (containers_of(job_id) or processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert containers_of(job_id) == [] and processes_with(marker) == []


def test_the_reconciler_sweeps_containers_of_ended_jobs(platform: Platform, sandbox_image: str) -> None:
    """Whatever left it (a worker killed in the middle of its clean-up, say), a container of this instance
    whose job is not active goes; another instance's container on the same engine stays."""
    ours = instance_label(platform.instance.home.resolve())

    def start(instance: str) -> str:
        return subprocess.run(
            ["docker", "run", "--detach", "--pull", "never", "--network", "none", "--label", f"{JOB_LABEL}=ended",
             "--label", f"{INSTANCE_LABEL}={instance}", sandbox_image, "sleep", "300"],
            capture_output=True, text=True, check=True, timeout=60).stdout.strip()

    stale, foreign = start(ours), start("someone-else")
    try:
        deadline = time.monotonic() + 30
        while stale in containers_of("ended", full=True):
            assert time.monotonic() < deadline, "the reconciler left a container of an ended job"
            time.sleep(0.3)
        assert foreign in containers_of("ended", full=True)
        assert "removed 1 container(s) of ended jobs" in platform.log()
    finally:
        subprocess.run(["docker", "rm", "--force", stale, foreign], capture_output=True, check=False, timeout=60)


def worker_pid(platform: Platform) -> int:
    """The pid of the worker process `serve` started (its only child running `leadersboard.cli worker`)."""
    assert platform.process is not None
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == platform.process.pid and b"worker" in cmdline:
            return int(entry.name)
    raise AssertionError("serve has no worker process")


@pytest.mark.anomalib
@pytest.mark.slow
@pytest.mark.timeout(IMAGE_BUILD_SECONDS + 900)
def test_padim_example_runs_in_a_container(make_platform: Callable[..., Platform], anomalib_image: str,
                                           tmp_path: Path) -> None:
    """The real example (anomalib PaDiM, CPU) in the anomalib image, on a generated VisA-like set."""
    platform = make_platform(limits={"job_timeout_seconds": 900}, image=anomalib_image,
                             job={"job_memory": "4g", "job_cpus": 2, "job_shm_size": "1g"})
    data = generate_dataset(tmp_path / "visa-real", layout="visa", categories=("pcb1",))
    platform.instance.cli("dataset", "add", "visa", str(data))
    user = new_user(platform)
    git = platform.client(tmp_path, user)
    shutil.copytree(EXAMPLE, git.workdir / "padim")
    git.commit("PaDiM example")
    code, out = git.push(f"users/{user}")
    assert code == 0, out
    job_id = next(line.split(" job ", 1)[1].split()[0] for line in out.splitlines() if "padim: job " in line)

    job = platform.wait_status(job_id, user, timeout=900)
    log = platform.api("GET", f"/jobs/{job_id}/logs", user).text
    assert job["status"] == "completed", (job, log[-3000:])
    assert job["metrics"]["auroc"] >= 0.9 and 0 <= job["metrics"]["f1_score"] <= 1
    assert f"container leadersboard-job-{job_id}: image {anomalib_image}" in log
    assert_cleaned_up(platform, job_id)


def test_serve_says_when_the_image_is_missing(docker_engine: None, tmp_path: Path) -> None:
    inst: Instance = create_instance(tmp_path, users=())
    document = yaml.safe_load(inst.config_path.read_text())
    document["runner"]["docker_image"] = "leadersboard-no-such-image"
    inst.config_path.write_text(yaml.safe_dump(document))
    result = run_cli("serve", "--executor", "docker", home=inst.home, check=False)
    assert result.returncode == 1
    assert "the sandbox image 'leadersboard-no-such-image' does not exist here" in result.stderr
    assert "leadersboard image build" in result.stderr


def test_image_build_is_idempotent(sandbox_image: str) -> None:
    result = run_cli("image", "build", "--name", sandbox_image)
    assert f"{sandbox_image} is up to date" in result.stdout


# ------------------------------------------------------------------------ pure parts, without docker


def test_create_args_lock_the_container_down(tmp_path: Path) -> None:
    sandbox = Sandbox(scratch=tmp_path / "job", command=["/opt/venv/bin/python", "main.py"],
                      env={"HOME": "/job/home"}, timeout_seconds=60, max_file_bytes=1024,
                      data_mounts={"pcb1": tmp_path / "data,1" / "pcb1"}, gpu="3")
    spec = ContainerSpec(image="img", memory="1g", cpus=2, pids=64, shm_size="256m", uid=10001, gid=10001,
                         gpus=True)
    args = create_args(sandbox, spec, "leadersboard-job-x", "x")
    line = " ".join(args)
    for flag in ("--network none", "--user 10001:10001", "--cap-drop ALL", "--security-opt no-new-privileges",
                 "--read-only", "--memory 1g --memory-swap 1g", "--cpus 2", "--pids-limit 64", "--ipc private",
                 "--shm-size 256m", "--ulimit fsize=1024:1024", "--gpus device=3", "--workdir /job/work",
                 f"--label {JOB_LABEL}=x", "--pull never", "--env HOME=/job/home"):
        assert flag in line, flag
    assert f"type=bind,source={tmp_path / 'job'},target=/job" in line
    assert f'type=bind,"source={tmp_path / "data,1" / "pcb1"}",target=/data/pcb1,readonly' in line
    assert args[-3:] == ["img", "/opt/venv/bin/python", "main.py"]
    no_gpu = create_args(sandbox, ContainerSpec("img", "1g", 2, 64, "256m", 10001, 10001, gpus=False), "n", "x")
    assert "--gpus" not in no_gpu


def test_apt_source_is_read_from_the_machines_configuration(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "security.sources").write_text(
        "Types: deb\nURIs: http://security.invalid/debian-security\nSuites: trixie-security\nComponents: main\n")
    (tmp_path / "sources.list.d" / "main.sources").write_text(
        "# comment\nTypes: deb-src\nURIs: http://src.invalid/debian\nSuites: trixie\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: trixie trixie-updates\nComponents: main\n")
    assert apt_source(tmp_path).mirror == "http://mirror.invalid/debian"
    assert apt_source(tmp_path).suite == "trixie"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://old.invalid/debian bookworm main\n")
    assert (apt_source(tmp_path).mirror, apt_source(tmp_path).suite) == ("http://old.invalid/debian", "bookworm")


def test_stopping_serve_removes_the_running_container(make_platform: Callable[..., Platform],
                                                      tmp_path: Path) -> None:
    platform = make_platform()
    user = new_user(platform)
    marker = f"lb-marker-{uuid.uuid4().hex}"
    job_id = platform.submit(platform.client(tmp_path, user), "sleepy", SLEEPING_MAIN.format(marker=marker))
    deadline = time.monotonic() + 60
    while not containers_of(job_id) or not processes_with(marker):
        assert time.monotonic() < deadline, platform.log()[-3000:]
        time.sleep(0.2)
    platform.stop()  # SIGTERM, as an operator stops it: the worker cancels its job
    assert containers_of(job_id) == [], platform.log()[-3000:]
    assert processes_with(marker) == []
