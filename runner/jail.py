"""The jail: how the process executor runs a job when the worker is root.

The worker starts `python -m leadersboard.runner.jail` with a `JailSpec` as JSON on its standard
input (not its command line, which the job could read from /proc/1/cmdline). This launcher
joins the job's control groups, leaves the worker's namespaces (mount, PID, network, IPC, UTS,
cgroup) and forks the new PID namespace's first process, PID 1, which
- builds the job's view of the host in its own mount namespace (`jail_fs.build_view`): everything
  read-only, the instance folder and other secrets hidden, the data set read-only, only the job's
  scratch folder (and private /tmp, /dev/shm) writable;
- brings the loopback interface up (the network namespace has no other);
- forks the job's process, which drops every capability and its root user for `uid`/`gid`, sets
  no-new-privileges and execs the submission;
- reaps orphans, and exits when the job's process does: the kernel then kills every process left in
  the namespace, whatever it did to its session or environment.

Whoever kills the launcher kills the job: PID 1 has it as its parent-death signal, and the launcher
has the worker. The launcher reports a failure to set up (not the submission's) on `status_fd`,
which the worker reads after the end; a setup failure exits with SETUP_FAILED.

Only the standard library here: the launcher must start fast and import nothing of the platform.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .jail_fs import build_view

SETUP_FAILED = 125  # as docker says when it could not start a container
HOSTNAME = "leadersboard-job"
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"  # struct ifreq: the name, then ifr_flags in the union


@dataclass(frozen=True)
class JailSpec:
    """One job's jail. Paths are the host's: inside, a path is where it is outside, or hidden."""

    command: list[str]
    env: dict[str, str]  # exactly the submission's environment
    workdir: str
    scratch: str  # the only folder of the host the job may write
    uid: int
    gid: int
    parent: int  # the worker's pid: a launcher whose worker is already gone does not start the job
    status_fd: int
    hidden: list[str] = field(default_factory=list)  # folders replaced by an empty, read-only one
    readable: list[str] = field(default_factory=list)  # bound back read-only where hidden (the interpreter)
    data: dict[str, str] = field(default_factory=dict)  # workdir/<name> <- a read-only data folder
    model_cache: dict[str, str] = field(default_factory=dict)  # target <- the operator's weights, read-only
    tmp_size: str = "512m"  # the private /tmp and /var/tmp
    shm_size: str = "64m"  # the private /dev/shm
    max_file_bytes: int = 8 * 1024**3
    cgroup_procs: list[str] = field(default_factory=list)  # the job's cgroups, joined first

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> JailSpec:
        return cls(**json.loads(text))


def main() -> int:
    spec = JailSpec.from_json(sys.stdin.read())
    devnull = os.open(os.devnull, os.O_RDONLY)  # the job reads nothing
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        _die_with_parent()
        if os.getppid() != spec.parent:
            return SETUP_FAILED  # the worker died while this started: nobody waits for the job
        for procs in spec.cgroup_procs:
            Path(procs).write_text(str(os.getpid()))
        _unshare(NAMESPACES)
    except OSError as exc:
        return _report(spec, "namespaces", exc)
    alive_read, alive_write = os.pipe()  # PID 1 sees the launcher gone as the end of this pipe
    init = os.fork()
    if init == 0:
        code = SETUP_FAILED
        try:
            os.close(alive_write)
            code = _init(spec, alive_read)
        except BaseException as exc:  # whatever it is, PID 1 must not fall back into the launcher's code
            _report(spec, "init", exc)
        finally:
            os._exit(code)
    os.close(alive_read)
    signal.signal(signal.SIGTERM, lambda *_: _forward(init, signal.SIGTERM))
    _, status = os.waitpid(init, 0)
    return _exit_code(status)


def _init(spec: JailSpec, alive: int) -> int:
    """PID 1 of the job's namespace."""
    _die_with_parent()
    if select.select([alive], [], [], 0)[0]:
        return SETUP_FAILED  # the launcher died before the line above could tie us to it
    os.umask(0o022)
    try:
        build_view(spec)
        _loopback_up()
        socket.sethostname(HOSTNAME)
    except OSError as exc:
        return _report(spec, "mounts", exc)
    job = os.fork()
    if job == 0:
        try:
            _become_the_job(spec)
        except BaseException as exc:
            _report(spec, "start", exc)
        finally:
            os._exit(SETUP_FAILED)
    os.close(spec.status_fd)  # the job keeps its copy until its exec succeeds
    signal.signal(signal.SIGTERM, lambda *_: _forward(job, signal.SIGTERM))
    while True:
        pid, status = os.wait()  # reaps orphans too
        if pid == job:
            return _exit_code(status)


def _become_the_job(spec: JailSpec) -> None:
    """Drop everything root has, then exec the submission (never returns)."""
    Path("/proc/self/oom_score_adj").write_text("1000")  # the job goes first when memory runs out
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec.max_file_bytes, spec.max_file_bytes))
    libc = ctypes.CDLL(None, use_errno=True)
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last_cap + 1):  # not even a file capability can give one back
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability")
    os.setgroups([])
    os.setresgid(spec.gid, spec.gid, spec.gid)
    os.setresuid(spec.uid, spec.uid, spec.uid)  # from root to another user: every capability goes
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM):  # as a fresh process has them
        signal.signal(sig, signal.SIG_DFL)
    os.chdir(spec.workdir)
    os.execve(spec.command[0], spec.command, spec.env)  # noqa: S606 (the submission's own command, no shell)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(IFREQ, b"lo", 0)
        flags = struct.unpack(IFREQ, _ioctl(sock, SIOCGIFFLAGS, request))[1]
        _ioctl(sock, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def _ioctl(sock: socket.socket, request: int, argument: bytes) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, argument)


def _die_with_parent() -> None:
    _check(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")


def _unshare(flags: int) -> None:
    _check(ctypes.CDLL(None, use_errno=True).unshare(flags), "unshare")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _forward(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _exit_code(status: int) -> int:
    """A wait status as a shell shows it: the exit code, or 128 + the signal that killed."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _report(spec: JailSpec, stage: str, exc: BaseException) -> int:
    """Tell the worker what failed (`stage`: namespaces, mounts, start) and why."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        reason = f"{type(exc).__name__}: {exc}"
    with contextlib.suppress(OSError):
        os.write(spec.status_fd, f"{stage}: {reason}".encode())
    return SETUP_FAILED


if __name__ == "__main__":
    sys.exit(main())
