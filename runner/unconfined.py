"""How the process executor runs a job it cannot jail (the worker is not root, or the kernel refused).

The job runs as the worker's user and sees the host; what still holds: a scrubbed environment, its
own session, a network namespace of its own where the kernel allows one (as root, or through an
unprivileged user namespace), no core dumps and the per-file limit, death with the worker
(PR_SET_PDEATHSIG), and at its end, when its main process exits, its process group and every
process that carries its job id (`processes.py`) are killed: a process left behind that holds the
job's output open neither keeps the job running nor outlives it. The worker, `serve`, the job log
and /healthz say that jobs run unconfined.
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
from collections.abc import Callable

from .processes import JOB_ENV, kill_job_processes
from .sandbox import Outcome, OutputSink, Sandbox, stream_output

KILL_GRACE_SECONDS = 5.0
PR_SET_PDEATHSIG = 1
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000


async def run_unconfined(sandbox: Sandbox, on_output: OutputSink, isolate_network: bool) -> Outcome:
    for name, source in sandbox.data_mounts.items():
        (sandbox.workdir / name).symlink_to(source, target_is_directory=True)
    if sandbox.model_cache is not None:  # nothing is read-only here: the job runs as the worker's user
        sandbox.model_cache_target.symlink_to(sandbox.model_cache, target_is_directory=True)
    start = time.monotonic()
    # The output pipe is ours, not the process transport's: then `proc.wait()` returns when the job's
    # main process exits, even while a process it left behind holds the pipe open.
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *sandbox.command, cwd=sandbox.workdir, env=sandbox.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd, stderr=write_fd, start_new_session=True,
            preexec_fn=_child_limits(sandbox.max_file_bytes, isolate_network))
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    output, pipe = await _reader(read_fd)
    timed_out = False
    try:
        timed_out = await stream_output(proc, on_output, sandbox.timeout_seconds, output)
    finally:
        # Also when cancelled: nothing the submission started may outlive its job, not even a
        # process that left the group (found by the job id in its environment).
        await _kill_group(proc)
        job_id = sandbox.env.get(JOB_ENV)
        if job_id:
            kill_job_processes(job_id)
        pipe.close()
    return Outcome(None if timed_out else proc.returncode, timed_out, time.monotonic() - start)


async def _reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A stream reading the pipe `fd` (closed with the transport)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(fd, "rb", buffering=0))
    return reader, transport


def network_isolation_works() -> bool:
    """Whether this host lets a child leave the network (probed once per worker with /bin/true)."""
    try:
        subprocess.run(["true"], preexec_fn=_unshare_network, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _unshare_network() -> None:
    """Move this process into a new, empty network namespace (a user namespace too when not root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare: {os.strerror(errno)}")


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
