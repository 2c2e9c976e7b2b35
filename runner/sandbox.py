"""The sandbox a submission runs in, as a typed description, and the process executor.

The process executor is for machines without Docker: the submission runs as a child process in
its own session, with a scrubbed environment, a wall-clock limit that kills its whole process group,
no way to outlive the worker (PR_SET_PDEATHSIG), and, where the kernel lets us, in a network
namespace of its own with no interface up: it cannot reach Redis, MLflow or anything else over
the network. It still runs as the worker's OS user and sees the host's files; the docker executor
(`docker_executor.py`) is the sandbox for untrusted code (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .processes import JOB_ENV, kill_job_processes

KILL_GRACE_SECONDS = 5.0
READ_CHUNK = 16 * 1024
PR_SET_PDEATHSIG = 1
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000

WORK_DIR = "work"  # the job's working directory, inside its scratch folder

OutputSink = Callable[[bytes], Awaitable[None]]


class SandboxError(Exception):
    """The sandbox could not be set up or started (the platform's fault, not the submission's)."""


@dataclass(frozen=True)
class Sandbox:
    scratch: Path  # the job's folder on this host: work/ (the working directory), home/, tmp/, the MLflow store
    command: list[str]  # as the submission's side sees it (see View)
    env: dict[str, str]  # exactly the submission's environment, paths as its side sees them
    timeout_seconds: float
    max_file_bytes: int = 8 * 1024**3
    network: bool = False
    data_mounts: dict[str, Path] = field(default_factory=dict)  # name in workdir -> read-only data folder
    gpu: str | None = None  # the GPU the worker owns (its index), if any

    @property
    def workdir(self) -> Path:
        return self.scratch / WORK_DIR


@dataclass(frozen=True)
class View:
    """How the sandbox looks from the inside: where the job's scratch folder is, which Python runs
    the entrypoint, and which GPU (CUDA_VISIBLE_DEVICES) the submission sees."""

    scratch: PurePosixPath
    python: str
    gpu: str

    @property
    def workdir(self) -> PurePosixPath:
        return self.scratch / WORK_DIR


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None
    timed_out: bool
    runtime_seconds: float
    oom_limit: str | None = None  # set when the sandbox was killed for going over this memory limit


class ProcessExecutor:
    name = "process"

    def __init__(self, python: str) -> None:
        self.python = python
        self.isolates_network = network_isolation_works()

    def view(self, scratch: Path, gpu: str | None) -> View:
        """The child sees the host as it is."""
        return View(PurePosixPath(scratch), self.python, gpu or "")

    async def run(self, sandbox: Sandbox, on_output: OutputSink) -> Outcome:
        for name, source in sandbox.data_mounts.items():
            (sandbox.workdir / name).symlink_to(source, target_is_directory=True)
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *sandbox.command, cwd=sandbox.workdir, env=sandbox.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            preexec_fn=_child_limits(sandbox.max_file_bytes, not sandbox.network and self.isolates_network))
        timed_out = False
        try:
            timed_out = await stream_output(proc, on_output, sandbox.timeout_seconds)
        finally:
            # Also when cancelled: nothing the submission started may outlive its job, not even a
            # process that left the group (found by the job id in its environment).
            await _kill_group(proc)
            job_id = sandbox.env.get(JOB_ENV)
            if job_id:
                kill_job_processes(job_id)
        return Outcome(None if timed_out else proc.returncode, timed_out, time.monotonic() - start)


async def stream_output(proc: asyncio.subprocess.Process, on_output: OutputSink, timeout: float) -> bool:
    """Pass the process's output on until it exits; True when `timeout` ran out first."""
    assert proc.stdout is not None
    stdout = proc.stdout

    async def pump() -> None:
        while chunk := await stdout.read(READ_CHUNK):
            await on_output(chunk)
        await proc.wait()

    try:
        await asyncio.wait_for(pump(), timeout)
    except TimeoutError:
        return True
    return False


def _unshare_network() -> None:
    """Move this process into a new, empty network namespace (a user namespace too when not root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare: {os.strerror(errno)}")


def network_isolation_works() -> bool:
    """Whether this host lets a child leave the network (probed once per worker with /bin/true)."""
    try:
        subprocess.run(["true"], preexec_fn=_unshare_network, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _child_limits(max_file_bytes: int, isolate_network: bool) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        if isolate_network:
            _unshare_network()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the worker
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return apply


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """TERM the whole process group, then KILL what is left after a grace period."""

    def alive() -> bool:
        return proc.returncode is None or _group_alive(proc.pid)

    if alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while alive() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.1)
        if alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
