"""A control group per job: its memory (no swap), CPU and pids limits, whether the kernel killed in
it for memory, and a sure way to end every process in it.

Version 2 (one hierarchy) or version 1 (one hierarchy per controller), whichever this host mounts
with the memory, cpu and pids controllers. Like Docker's cgroupfs driver, the groups sit at the top
of the hierarchy: `leadersboard/<instance>-<job id>` (instances sharing a host keep apart). The
worker makes a job's group before the job starts, the jail joins it first thing, and the worker
removes it after the end, killing whatever is still in it; the reconciler removes what a dead
worker left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from .mounts import mount_points

CONTROLLERS = ("memory", "cpu", "pids")
TOP = "leadersboard"
CPU_PERIOD_US = 100_000
EMPTY_WAIT_SECONDS = 10.0


class CgroupError(Exception):
    """No usable control group here, or one could not be made or removed; the message says why."""


@dataclass(frozen=True)
class ResourceLimits:
    memory_bytes: int
    cpus: int
    pids: int


@dataclass(frozen=True)
class JobCgroup:
    """One job's group: one folder per hierarchy (v1: per controller; v2: one)."""

    version: int
    folders: tuple[Path, ...]
    controllers: dict[str, Path]  # controller -> the folder that has it

    @property
    def procs_files(self) -> list[str]:
        """What a process writes its pid into to join the group."""
        return [str(folder / "cgroup.procs") for folder in self.folders]

    def create(self, limits: ResourceLimits) -> None:
        try:
            for folder in self.folders:
                folder.mkdir()
            self._limit(limits)
        except OSError as exc:
            self.destroy()
            raise CgroupError(f"cannot set up the job's control group: {exc}") from exc

    def _limit(self, limits: ResourceLimits) -> None:
        memory, cpu, pids = (self.controllers[name] for name in CONTROLLERS)
        quota = f"{limits.cpus * CPU_PERIOD_US}"
        if self.version == 2:
            _write(memory / "memory.max", str(limits.memory_bytes))
            _write_if_there(memory / "memory.swap.max", "0")
            _write(cpu / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
            _write_if_there(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))  # memory + swap
            _write_if_there(memory / "memory.swappiness", "0")  # where swap is not accounted
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", quota)
        _write(pids / "pids.max", str(limits.pids))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(FileNotFoundError):
                found |= {int(line) for line in Path(procs).read_text().split()}
        return found

    def oom_kills(self) -> int:
        """How many processes the kernel killed in the group for going over its memory."""
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            lines = (self.controllers["memory"] / events).read_text().splitlines()
        except FileNotFoundError:
            return 0
        counts = dict(line.split(maxsplit=1) for line in lines if " " in line)
        return int(counts.get("oom_kill", "0"))

    def destroy(self, wait: float = EMPTY_WAIT_SECONDS) -> None:
        """Kill every process in the group and remove it (gone already is fine)."""
        deadline = time.monotonic() + wait
        while True:
            self._kill()
            try:
                for folder in self.folders:
                    with contextlib.suppress(FileNotFoundError):
                        folder.rmdir()
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove the control group {self.folders[0]}: {exc.strerror}") from exc
            time.sleep(0.05)

    def _kill(self) -> None:
        kill_file = self.folders[0] / "cgroup.kill"  # v2 since Linux 5.14: the whole group at once
        if self.version == 2 and kill_file.exists():
            with contextlib.suppress(FileNotFoundError):
                kill_file.write_text("1")
            return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class CgroupTree:
    """This instance's groups on this host: `leadersboard/<instance>-*` in each hierarchy that matters."""

    version: int
    bases: dict[str, Path]  # controller -> `leadersboard` in the hierarchy that has it
    instance: str

    @classmethod
    def find(cls, instance: str, mountinfo: Path = Path("/proc/self/mountinfo")) -> CgroupTree:
        """This host's hierarchy with the memory, cpu and pids controllers; v2 when it has them all."""
        v1: dict[str, Path] = {}
        v2: set[str] = set()
        for point in mount_points(mountinfo):
            path = Path(point.path)
            if point.fstype == "cgroup2":
                with contextlib.suppress(OSError):
                    v2 = set((path / "cgroup.controllers").read_text().split()) & set(CONTROLLERS)
                if v2 == set(CONTROLLERS):
                    return cls._made(2, dict.fromkeys(CONTROLLERS, path), instance)
            elif point.fstype == "cgroup":
                for controller in CONTROLLERS:
                    if controller in point.options:
                        v1.setdefault(controller, path)
        if set(v1) == set(CONTROLLERS):
            return cls._made(1, v1, instance)
        raise CgroupError("this host mounts no control group hierarchy with the memory, cpu and pids controllers "
                          f"(cgroup v2 has {', '.join(sorted(v2)) or 'none'} of them, "
                          f"cgroup v1 {', '.join(sorted(v1)) or 'none'})")

    @classmethod
    def _made(cls, version: int, mounts: dict[str, Path], instance: str) -> CgroupTree:
        """Make `leadersboard` in each hierarchy; on v2, hand the controllers down to it and below."""
        bases = {name: mount / TOP for name, mount in mounts.items()}
        try:
            for mount in set(mounts.values()):
                if version == 2:
                    _enable_controllers(mount)
                (mount / TOP).mkdir(exist_ok=True)
                if version == 2:
                    _enable_controllers(mount / TOP)
        except OSError as exc:
            raise CgroupError(f"cannot make the control groups of jobs (cgroup v{version}): {exc}") from exc
        return cls(version, bases, instance)

    def job(self, job_id: str) -> JobCgroup:
        controllers = {name: base / f"{self.instance}-{job_id}" for name, base in self.bases.items()}
        folders = tuple(dict.fromkeys(controllers.values()))
        return JobCgroup(self.version, folders, controllers)

    def job_ids(self) -> set[str]:
        """This instance's jobs that have a group here now."""
        prefix = f"{self.instance}-"
        found: set[str] = set()
        for base in set(self.bases.values()):
            with contextlib.suppress(FileNotFoundError):
                found |= {entry.name.removeprefix(prefix) for entry in base.iterdir()
                          if entry.is_dir() and entry.name.startswith(prefix)}
        return found

    def check(self, limits: ResourceLimits) -> None:
        """Make and remove a group with these limits: what a job will need works here."""
        probe = self.job(f"probe-{os.getpid()}")
        probe.destroy()
        probe.create(limits)
        probe.destroy()

    def describe(self) -> str:
        return f"cgroup v{self.version}"


def _enable_controllers(folder: Path) -> None:
    control = folder / "cgroup.subtree_control"
    missing = set(CONTROLLERS) - set(control.read_text().split())
    if missing:
        control.write_text(" ".join(f"+{name}" for name in sorted(missing)))


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _write_if_there(path: Path, value: str) -> None:
    if path.exists():
        path.write_text(value)
