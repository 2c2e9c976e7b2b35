"""The process executor: each job a process tree of this host, for machines without Docker.

When the worker is root and the kernel allows it, each job runs in a jail (`jail.py`): as the
sandbox's user without capabilities, in PID, mount, network, IPC, UTS and cgroup namespaces of its
own, in a control group with the job's limits (`cgroups.py`), seeing the host read-only with the
instance folder hidden and writing only its scratch folder. Ending the jail's launcher ends every
process of the job (its PID namespace dies with its first process); the control group is then
emptied and removed.

Otherwise jobs run unconfined (`unconfined.py`), as the worker's user, and the worker, `serve`, each
job log and /healthz say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from leadersboard.settings import Settings, size_bytes

from . import scratch as scratch_folder
from .cgroups import CgroupError, CgroupTree, JobCgroup, ResourceLimits
from .containers import instance_label
from .jail import JailSpec
from .mounts import own_mount_namespace
from .processes import JOB_ENV
from .sandbox import (
    CONFINED,
    PARTIAL,
    TMP_SIZE,
    UNCONFINED,
    WORK_DIR,
    Confinement,
    Outcome,
    OutputSink,
    Sandbox,
    SandboxError,
    View,
    stream_output,
)
from .unconfined import network_isolation_works, run_unconfined

log = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 5.0
PROBE_SECONDS = 60
PROBE_PREFIX = "probe-"
CGROUP_FS = "/sys/fs/cgroup"
# The jail's launcher (its spec on stdin): the platform's own Python, isolated from the environment and the cwd.
LAUNCHER = (sys.executable, "-I", "-m", "leadersboard.runner.jail")
REFUSED_BY_KERNEL = ("namespaces", "mounts")  # the stages of a jail's failure that mean "not on this host"


@dataclass(frozen=True)
class HostJail:
    """What every jail of this worker gets."""

    uid: int
    gid: int
    hidden: tuple[str, ...]  # besides the data sets, read at each job: `dataset add` needs no restart
    readable: tuple[str, ...]  # the interpreter's folders
    limits: ResourceLimits
    memory: str  # the memory limit as configured, for the job's failure reason
    shm_size: str
    cgroups: CgroupTree | None  # None: the host has no usable control groups (no limits)

    def for_job(self, sandbox: Sandbox) -> tuple[ResourceLimits, str]:
        """The job's control-group limits and its memory as configured: its class's, else the worker's."""
        if sandbox.size is None:
            return self.limits, self.memory
        return (replace(self.limits, memory_bytes=size_bytes(sandbox.size.memory),
                        cpus=sandbox.size.host_cpus()), sandbox.size.memory)

    def spec(self, sandbox: Sandbox, datasets: list[str], cgroup: JobCgroup | None, status_fd: int) -> JailSpec:
        return JailSpec(
            command=sandbox.command, env=sandbox.env, workdir=str(sandbox.workdir), scratch=str(sandbox.scratch),
            uid=self.uid, gid=self.gid, parent=os.getpid(), status_fd=status_fd,
            hidden=[*self.hidden, *datasets], readable=list(self.readable),
            data={name: str(source) for name, source in sandbox.data_mounts.items()},
            model_cache=model_cache_binds(sandbox),
            tmp_size=TMP_SIZE, shm_size=self.shm_size, max_file_bytes=sandbox.max_file_bytes,
            cgroup_procs=cgroup.procs_files if cgroup else [])


def model_cache_binds(sandbox: Sandbox) -> dict[str, str]:
    """The jail's bind of the model cache: scratch/models <- the operator's folder (none without one)."""
    if sandbox.model_cache is None:
        return {}
    return {str(sandbox.model_cache_target): str(sandbox.model_cache)}


class ProcessExecutor:
    name = "process"

    def __init__(self, settings: Settings, python: str, jail: HostJail | None, confinement: Confinement,
                 isolates_network: bool) -> None:
        self.settings = settings
        self.python = python
        self.jail = jail
        self.confinement = confinement
        self.isolates_network = isolates_network
        # Only a jailed job's scratch folder has a size: the jail's host could mount it.
        self.scratch_size = size_bytes(settings.limits.job_scratch_size) if jail else None

    @classmethod
    def from_settings(cls, settings: Settings) -> ProcessExecutor:
        """Find out how far this host lets jobs be confined (runs a jail once); SandboxError when the
        jail works but the sandbox's user cannot run the interpreter."""
        python = settings.runner.python or sys.executable
        if os.geteuid() != 0:
            return cls.unconfined(settings, python, "the worker is not root")
        jail, missing = _host_jail(settings, python)
        refused = _probe(jail, settings.scratch_dir, python)
        if refused is not None:
            stage, reason = refused
            if stage in REFUSED_BY_KERNEL:
                return cls.unconfined(settings, python, f"the kernel refused the job's {stage} ({reason})")
            raise SandboxError(f"the sandbox's user {jail.uid} cannot run {python} ({reason}): make it readable "
                               "to that user, or set runner.python")
        limits = settings.limits
        summary = (f"user {jail.uid}, own PID, mount and network namespaces, the instance folder hidden, data "
                   f"read-only, scratch {limits.job_scratch_size}, ")
        if jail.cgroups is None:
            return cls(settings, python, jail, Confinement(PARTIAL, summary + f"but no memory, CPU or process "
                                                           f"limits: {missing}"), True)
        summary += (f"memory {limits.job_memory} without swap, {jail.limits.cpus} CPU(s), {limits.job_pids} "
                    f"processes ({jail.cgroups.describe()})")
        return cls(settings, python, jail, Confinement(CONFINED, summary), True)

    @classmethod
    def unconfined(cls, settings: Settings, python: str, why: str) -> ProcessExecutor:
        network = network_isolation_works()
        reach = "no network" if network else "the host's network"
        summary = (f"{why}: jobs run as the worker's user, see the host's files and processes, and have no memory, "
                   f"CPU, process or scratch limits; {reach}")
        return cls(settings, python, None, Confinement(UNCONFINED, summary), network)

    def keep_mounts_private(self) -> None:
        """For the worker, before it starts threads: the scratch file systems it mounts then live in a
        mount namespace of its own, and go with it (and their memory) whatever ends it."""
        if self.jail is not None:
            own_mount_namespace()

    def view(self, scratch: Path, gpu: str | None) -> View:
        """Jailed or not, the job sees its scratch folder at the host's path."""
        return View(PurePosixPath(scratch), self.python, gpu or "")

    async def run(self, sandbox: Sandbox, on_output: OutputSink) -> Outcome:
        if self.jail is None:
            return await run_unconfined(sandbox, on_output, not sandbox.network and self.isolates_network)
        return await self._run_jailed(self.jail, sandbox, on_output)

    async def _run_jailed(self, jail: HostJail, sandbox: Sandbox, on_output: OutputSink) -> Outcome:
        for name in sandbox.data_mounts:
            (sandbox.workdir / name).mkdir()  # where the jail mounts the category
        if sandbox.model_cache is not None:
            sandbox.model_cache_target.mkdir()  # where the jail mounts the operator's weights
        await asyncio.to_thread(scratch_folder.hand_over, sandbox.scratch, jail.uid, jail.gid)
        datasets = [str(dataset.path) for dataset in self.settings.current_datasets().values()]
        cgroup = jail.cgroups.job(sandbox.env.get(JOB_ENV) or sandbox.scratch.name) if jail.cgroups else None
        limits, memory = jail.for_job(sandbox)
        if cgroup is not None:
            try:
                await asyncio.to_thread(cgroup.create, limits)
            except CgroupError as exc:
                raise SandboxError(str(exc)) from exc
        status_read, status_write = os.pipe()
        proc: asyncio.subprocess.Process | None = None
        timed_out, oom_kills, start = False, 0, time.monotonic()
        try:
            spec = jail.spec(sandbox, datasets, cgroup, status_write)
            proc = await asyncio.create_subprocess_exec(
                *LAUNCHER, env=_launcher_env(sandbox), pass_fds=(status_write,),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            os.close(status_write)
            status_write = -1
            assert proc.stdin is not None
            proc.stdin.write(spec.to_json().encode())
            await proc.stdin.drain()
            proc.stdin.close()
            timed_out = await stream_output(proc, on_output, sandbox.timeout_seconds)
        finally:  # a cancel included: the job ends here, all of it
            if status_write >= 0:
                os.close(status_write)
            if proc is not None:
                await _end(proc)
            if cgroup is not None:
                oom_kills = cgroup.oom_kills()
                await asyncio.shield(asyncio.to_thread(_destroy, cgroup))
            problem = _read_all(status_read)
        if problem:
            raise SandboxError(f"the jail could not start the job: {problem}")
        assert proc is not None
        return Outcome(None if timed_out else proc.returncode, timed_out, time.monotonic() - start,
                       memory if oom_kills else None)


def _launcher_env(sandbox: Sandbox) -> dict[str, str]:
    """Nothing of the worker's environment (it holds the Redis password); the job id, by which the
    reconciler finds the launcher of a job whose worker died."""
    return {"PATH": os.defpath, JOB_ENV: sandbox.env.get(JOB_ENV, "")}


def _host_jail(settings: Settings, python: str) -> tuple[HostJail, str]:
    """The jail of this worker's jobs, and why it has no control group (empty when it has one)."""
    limits = settings.limits
    resources = ResourceLimits(size_bytes(limits.job_memory), min(limits.job_cpus, os.cpu_count() or 1),
                               limits.job_pids)
    cgroups: CgroupTree | None = None
    missing = ""
    try:
        cgroups = CgroupTree.find(instance_label(settings.home))
        cgroups.check(resources)
    except CgroupError as exc:
        cgroups, missing = None, str(exc)
    uid = settings.runner.sandbox_uid
    # The instance; the worker's own home; the host's control groups (other jobs' names and usage).
    hidden = (str(settings.home), pwd.getpwuid(os.geteuid()).pw_dir, CGROUP_FS)
    jail = HostJail(uid=uid, gid=uid, hidden=hidden, readable=tuple(interpreter_folders(python)), limits=resources,
                    memory=limits.job_memory, shm_size=limits.job_shm_size, cgroups=cgroups)
    return jail, missing


def interpreter_folders(python: str) -> list[str]:
    """The folders `python` runs from: its installation, its virtual environment, its import path."""
    code = ("import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, "
            "sys.base_exec_prefix, *sys.path]))")
    try:
        result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=PROBE_SECONDS,
                                check=True, env={"PATH": os.defpath})
        paths = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SandboxError(f"cannot run {python}: {exc}") from exc
    return sorted({os.path.realpath(path) for path in paths if path and os.path.isdir(path)})


def _probe(jail: HostJail, scratch_root: Path, python: str) -> tuple[str, str] | None:
    """Run `python -c ''` in a jail once: (stage, reason) when it fails, None when it works."""
    for old in scratch_root.glob(f"{PROBE_PREFIX}*"):  # a probe's folder its worker left when killed
        if not Path("/proc", old.name.removeprefix(PROBE_PREFIX)).exists():
            scratch_folder.remove(old)
    scratch = scratch_root / f"{PROBE_PREFIX}{os.getpid()}"
    status_read, status_write = os.pipe()
    try:
        scratch_folder.create(scratch, None)  # a plain folder: a probe mounts nothing a kill could leave
        (scratch / WORK_DIR).mkdir()
        scratch_folder.hand_over(scratch, jail.uid, jail.gid)
        sandbox = Sandbox(scratch=scratch, command=[python, "-c", ""], env={"PATH": os.defpath},
                          timeout_seconds=PROBE_SECONDS)
        spec = jail.spec(sandbox, [], None, status_write)
        result = subprocess.run(LAUNCHER, input=spec.to_json(), pass_fds=(status_write,), env=_launcher_env(sandbox),
                                capture_output=True, text=True, timeout=PROBE_SECONDS, check=False)
    finally:
        os.close(status_write)
        problem = _read_all(status_read)
        scratch_folder.remove(scratch)
    if problem:
        stage, _, reason = problem.partition(": ")
        return stage, reason
    if result.returncode != 0:
        return "start", f"{python} exited {result.returncode}: {(result.stdout + result.stderr).strip()[-300:]}"
    return None


def _read_all(fd: int) -> str:
    """What the jail reported on its status pipe (closed by every writer: the job has ended)."""
    chunks = []
    try:
        os.set_blocking(fd, False)
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 4096):
                chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace").strip()


async def _end(proc: asyncio.subprocess.Process) -> None:
    """TERM the launcher (it passes it on to the job), KILL it after a grace period: with it goes
    the job's PID namespace, every process in it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    await proc.wait()


def _destroy(cgroup: JobCgroup) -> None:
    try:
        cgroup.destroy()
    except CgroupError:  # the reconciler tries again
        log.exception("could not remove a job's control group")
