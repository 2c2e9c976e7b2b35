"""The docker executor: each job in a container of its own, the sandbox for hostile code.

The container (`create_args`):
- no network, an unprivileged user (`runner.sandbox_uid`), every capability dropped,
  no-new-privileges, a read-only root file system with a small /tmp in memory, an init that reaps
  orphans;
- the job limits both executors share (`limits.job_*`): memory with no swap, CPU and pids, a
  private IPC namespace with its own /dev/shm; no core dumps, the per-file size limit;
- Docker's own PID namespace and /proc (the container sees only its processes), and no host path
  besides the two above;
- the job's scratch folder at /job (working directory /job/work), each category folder of the data
  set read-only at /data/<category>, linked by name from the working directory; the scratch folder is
  the worker's tmpfs of `limits.job_scratch_size` (`scratch.py`), so the container writes nothing
  of the host's disk;
- its GPU (`--gpus device=N`) when the worker owns one and the host has the NVIDIA container runtime;
- labelled with the job id and the instance, named after the job; its output attached live, and not
  kept by docker.

The job's end, whatever it is (done, time limit, cancel, error), removes the container; one left by
a dead worker, or by anything else, is removed by the reconciler (`containers.py`).

We drive the `docker` command line rather than the Python SDK: no extra dependency, every call is
an asyncio subprocess (the SDK blocks), and what the worker runs is what an operator can type.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from leadersboard.settings import Settings, size_bytes

from . import scratch as scratch_folder
from .containers import (
    DOCKER,
    INSTANCE_LABEL,
    JOB_LABEL,
    DockerError,
    container_name,
    docker,
    instance_label,
    remove_job_containers,
)
from .image import PYTHON, UID_LABEL
from .processes import JOB_ENV
from .sandbox import (
    CONFINED,
    MODEL_CACHE_DIR,
    PARTIAL,
    TMP_SIZE,
    WORK_DIR,
    Confinement,
    Outcome,
    OutputSink,
    Sandbox,
    SandboxError,
    View,
    stream_output,
)

log = logging.getLogger(__name__)

JOB_DIR = PurePosixPath("/job")  # the job's scratch folder, inside
DATA_DIR = PurePosixPath("/data")  # the data set's category folders, inside, read-only
TMPFS = f"/tmp:rw,nosuid,nodev,size={TMP_SIZE}"  # noqa: S108 (the container's own /tmp, in memory)
READ_CHUNK = 16 * 1024


class DockerUnavailable(Exception):
    """Docker cannot run jobs on this host (no engine, no image); the message says what to do."""


@dataclass(frozen=True)
class ContainerSpec:
    """What every job's container gets, fixed when the worker starts."""

    image: str
    memory: str
    cpus: int
    pids: int
    shm_size: str
    uid: int
    gid: int
    gpus: bool  # the host can hand a container a GPU (NVIDIA container runtime)
    instance: str = ""  # the instance label's value (`containers.instance_label`)


class DockerExecutor:
    name = "docker"
    isolates_network = True

    def __init__(self, spec: ContainerSpec, scratch_size: str = "") -> None:
        self.spec = spec
        # Only root mounts the scratch folder's file system and hands it to the sandbox's user.
        root = scratch_folder.can_limit()
        self.scratch_size = size_bytes(scratch_size) if root and scratch_size else None
        summary = self.describe() + (f", scratch {scratch_size}" if self.scratch_size else "")
        self.confinement = (Confinement(CONFINED, summary) if root else Confinement(
            PARTIAL, summary + "; the worker is not root: containers run as its user, and scratch folders have "
            "no size limit"))

    @classmethod
    def from_settings(cls, settings: Settings) -> DockerExecutor:
        """Check that the engine answers and the image exists, and read what the host offers."""
        runner = settings.runner
        try:
            docker("version", "--format", "{{.Server.Version}}")
        except DockerError as exc:
            raise DockerUnavailable(f"the docker executor cannot reach the Docker engine ({exc}); start dockerd, "
                                    "or run with --executor process") from exc
        try:
            labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}",
                                       runner.docker_image)) or {}
        except DockerError as exc:
            raise DockerUnavailable(f"the sandbox image {runner.docker_image!r} does not exist here; build it with "
                                    f"`leadersboard image build --name {runner.docker_image}`") from exc
        if os.geteuid() == 0:
            uid = gid = runner.sandbox_uid
        else:  # only root can hand the scratch folder to another user: jobs run as the worker's user
            uid, gid = os.geteuid(), os.getegid()
            log.warning("the worker is not root: containers run as its own user %d, not runner.sandbox_uid", uid)
        if str(uid) != labels.get(UID_LABEL, str(uid)):
            log.warning("the image %s was built for uid %s, jobs run as %d: rebuild it with "
                        "`leadersboard image build --rebuild`", runner.docker_image, labels[UID_LABEL], uid)
        limits = settings.limits
        spec = ContainerSpec(image=runner.docker_image, memory=limits.job_memory,
                             cpus=min(limits.job_cpus, os.cpu_count() or 1), pids=limits.job_pids,
                             shm_size=limits.job_shm_size, uid=uid, gid=gid, gpus=nvidia_runtime(),
                             instance=instance_label(settings.home))
        return cls(spec, limits.job_scratch_size)

    def describe(self, job: Sandbox | None = None) -> str:
        """The containers' limits, for the worker's log; with `job`, the GPU that job's container gets."""
        spec = self.spec if job is None else self.spec_for(job)
        if job is None:
            gpu = f"GPU {'yes' if spec.gpus else 'no'}"
        else:
            gpu = f"GPU {job.gpu} of the host" if job.gpu is not None and spec.gpus else "no GPU"
        return (f"image {spec.image}, memory {spec.memory} (no swap), {spec.cpus} CPU(s), {spec.pids} processes, "
                f"shared memory {spec.shm_size}, user {spec.uid}:{spec.gid}, {gpu}")

    def view(self, scratch: Path, gpu: str | None) -> View:
        """The scratch folder is /job; the worker's GPU, when handed over, is the container's only one."""
        return View(JOB_DIR, PYTHON, "0" if gpu is not None and self.spec.gpus else "")

    async def run(self, sandbox: Sandbox, on_output: OutputSink) -> Outcome:
        job_id = sandbox.env.get(JOB_ENV) or sandbox.scratch.name
        name = container_name(job_id)
        spec = self.spec_for(sandbox)
        await asyncio.to_thread(self._prepare, sandbox)
        try:
            try:
                await asyncio.to_thread(remove_job_containers, job_id)  # one left by an earlier try of this job
                await _docker(*create_args(sandbox, spec, name, job_id))
            except DockerError as exc:
                raise SandboxError(str(exc)) from exc
            await on_output(f"[leadersboard] container {name}: {self.describe(sandbox)}\n".encode())
            return await self._attach(name, sandbox.timeout_seconds, on_output, spec.memory)
        finally:  # every end, a cancel included: nothing of the job may live on
            await asyncio.shield(asyncio.to_thread(_remove, job_id))

    def spec_for(self, sandbox: Sandbox) -> ContainerSpec:
        """The container of this job: its resource class's memory and CPUs, else the worker's."""
        if sandbox.size is None:
            return self.spec
        return replace(self.spec, memory=sandbox.size.memory, cpus=sandbox.size.host_cpus())

    async def _attach(self, name: str, timeout: float, on_output: OutputSink, memory: str) -> Outcome:
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            DOCKER, "start", "--attach", name, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        timed_out = False
        try:
            timed_out = await stream_output(proc, on_output, timeout)
            if timed_out:
                with contextlib.suppress(DockerError):
                    await _docker("kill", name)
        finally:
            if proc.returncode is None:  # the attached client, not the container: that one is removed after
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        runtime = time.monotonic() - start
        try:
            state = json.loads(await _docker("inspect", "--format", "{{json .State}}", name))
        except (DockerError, ValueError) as exc:
            raise SandboxError(f"cannot read the state of container {name}: {exc}") from exc
        if state.get("Error"):
            raise SandboxError(f"container {name} did not run: {state['Error']}")
        oom = memory if state.get("OOMKilled") else None
        return Outcome(None if timed_out else int(state.get("ExitCode", -1)), timed_out, runtime, oom)

    def _prepare(self, sandbox: Sandbox) -> None:
        """Hand the scratch folder to the sandbox's user (`scratch.hand_over`), and link the data set's
        categories."""
        scratch_folder.hand_over(sandbox.scratch, self.spec.uid, self.spec.gid)
        for category in sandbox.data_mounts:
            (sandbox.workdir / category).symlink_to(DATA_DIR / category, target_is_directory=True)
        if sandbox.model_cache is not None:
            sandbox.model_cache_target.mkdir(exist_ok=True)  # the mount point, the worker's, not the job's


def create_args(sandbox: Sandbox, spec: ContainerSpec, name: str, job_id: str) -> list[str]:
    """`docker create ...` for the job: the sandbox, as flags."""
    fsize = sandbox.max_file_bytes
    args = [
        "create", "--name", name, "--label", f"{JOB_LABEL}={job_id}", "--label", f"{INSTANCE_LABEL}={spec.instance}",
        "--pull", "never",
        "--network", "none",
        "--user", f"{spec.uid}:{spec.gid}",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--read-only", "--tmpfs", TMPFS,
        "--memory", spec.memory, "--memory-swap", spec.memory, "--oom-score-adj", "1000",
        "--cpus", str(spec.cpus), "--pids-limit", str(spec.pids),
        "--ipc", "private", "--shm-size", spec.shm_size,
        "--ulimit", "core=0", "--ulimit", f"fsize={fsize}:{fsize}",
        "--init", "--log-driver", "none",
        "--mount", _bind(sandbox.scratch, JOB_DIR, readonly=False),
        "--workdir", str(JOB_DIR / WORK_DIR),
    ]
    for category, source in sorted(sandbox.data_mounts.items()):
        args += ["--mount", _bind(source, DATA_DIR / category, readonly=True)]
    if sandbox.model_cache is not None:  # inside the scratch folder's mount: the engine mounts it after
        args += ["--mount", _bind(sandbox.model_cache, JOB_DIR / MODEL_CACHE_DIR, readonly=True)]
    if sandbox.network:
        raise SandboxError("the docker executor gives jobs no network")
    if sandbox.gpu is not None and spec.gpus:
        args += ["--gpus", f"device={sandbox.gpu}"]
    for key, value in sorted(sandbox.env.items()):
        args += ["--env", f"{key}={value}"]
    return [*args, spec.image, *sandbox.command]


def _bind(source: Path, target: PurePosixPath, readonly: bool) -> str:
    """A `--mount` value (CSV: a path with a comma or quote is quoted)."""
    fields = ["type=bind", f"source={source}", f"target={target}", *(["readonly"] if readonly else [])]
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    return line.getvalue()


def nvidia_runtime() -> bool:
    """Whether this host's Docker can hand a GPU to a container (`--gpus`)."""
    if shutil.which("nvidia-container-runtime-hook"):
        return True
    with contextlib.suppress(DockerError, ValueError):
        return "nvidia" in (json.loads(docker("info", "--format", "{{json .Runtimes}}")) or {})
    return False


async def _docker(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(DOCKER, *args, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:  # let the call finish (ms): what it creates, the caller then removes
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise DockerError(f"docker {args[0]} exited {proc.returncode}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


def _remove(job_id: str) -> None:
    try:
        remove_job_containers(job_id)
    except DockerError:  # the reconciler tries again if the job's worker goes away
        log.exception("job %s: could not remove its container", job_id)
