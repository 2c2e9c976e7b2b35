"""The sandbox a submission runs in, as typed descriptions that both executors share: what the job
gets (`Sandbox`), how it looks from the inside (`View`), how it ended (`Outcome`), and how well an
executor confines jobs on this host (`Confinement`).

The executors: `process_executor.py` (a jail of namespaces and control groups when the worker is
root) and `docker_executor.py` (a container per job). See docs/architecture.md, "Executors".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from leadersboard.resource_classes import JobSize

READ_CHUNK = 16 * 1024
DRAIN_SECONDS = 0.5  # output passed on after the job's exit: what it wrote is in the pipe already
WORK_DIR = "work"  # the job's working directory, inside its scratch folder
TMP_SIZE = "512m"  # the private /tmp a job gets, in memory, under either executor

CONFINED = "confined"  # the job reaches nothing of the instance, the host or other jobs; limits hold
PARTIAL = "partial"  # confined, but without some limit (the summary says which)
UNCONFINED = "unconfined"  # the job runs as the worker and sees the host

OutputSink = Callable[[bytes], Awaitable[None]]


class SandboxError(Exception):
    """The sandbox could not be set up or started (the platform's fault, not the submission's)."""


MODEL_CACHE_DIR = "models"  # in the scratch folder, beside work/ and home/


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
    model_cache: Path | None = None  # the operator's pretrained weights, read-only at scratch/models
    size: JobSize | None = None  # its resource class's CPUs and memory; None: the executor's own (`limits`)

    @property
    def model_cache_target(self) -> Path:
        """Where the job sees the model cache, on this host's side (`View.scratch / models` inside)."""
        return self.scratch / MODEL_CACHE_DIR

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
class Confinement:
    """How an executor keeps this worker's jobs apart, said once at start, in each job log and in
    /healthz."""

    level: str  # CONFINED, PARTIAL or UNCONFINED
    summary: str  # what a job gets, or what it lacks and why, in a sentence

    def __str__(self) -> str:
        return f"{self.level} ({self.summary})"


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None
    timed_out: bool
    runtime_seconds: float
    oom_limit: str | None = None  # set when the sandbox was killed for going over this memory limit


async def stream_output(proc: asyncio.subprocess.Process, on_output: OutputSink, timeout: float,
                        output: asyncio.StreamReader | None = None) -> bool:
    """Pass the process's output on until the process exits; True when `timeout` ran out first.

    The job is over when its main process exits, not when its output closes: a process it left
    behind may hold the pipe open. After the exit, what is in the pipe is passed on for at most
    DRAIN_SECONDS. `output` is a pipe of the caller's own: with asyncio's (`proc.stdout`),
    `proc.wait()` returns only once that pipe closes too (Python 3.11), so the exit is seen then.
    """
    stream = output if output is not None else proc.stdout
    assert stream is not None
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    exited = asyncio.ensure_future(proc.wait())
    read: asyncio.Future[bytes] | None = None
    draining = False
    try:
        while True:
            if not draining and exited.done():
                draining, end = True, loop.time() + DRAIN_SECONDS
            left = end - loop.time()
            if left <= 0:
                return not draining
            read = read or asyncio.ensure_future(stream.read(READ_CHUNK))
            waiting: set[asyncio.Future[Any]] = {read} if draining else {read, exited}
            await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if not read.done():
                continue
            chunk, read = read.result(), None
            if chunk:
                await on_output(chunk)
            elif draining:  # the pipe is closed and empty: nothing more can come
                return False
            else:  # the output closed before the process exited: wait for the exit
                try:
                    await asyncio.wait_for(asyncio.shield(exited), max(0.0, end - loop.time()))
                except TimeoutError:
                    return True
                return False
    finally:
        pending = [task for task in (read, exited) if task is not None and not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
