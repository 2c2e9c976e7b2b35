"""mount(2) and umount2(2) from Python, and the mount table as the kernel shows it.

Used by the worker (the scratch folder's own file system) and by the jail (the view of the host a
job gets, built in the job's mount namespace). Python has no binding of its own for these calls.
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass
from pathlib import Path

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MNT_DETACH = 0x2
CLONE_NEWNS = 0x20000

# The per-mount options of /proc/self/mountinfo that a remount must keep (atime is kept by the kernel).
KEPT_OPTIONS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}
ESCAPED = re.compile(r"\\([0-7]{3})")  # mountinfo writes a space in a path as \040


@dataclass(frozen=True)
class MountPoint:
    path: str
    fstype: str
    flags: int  # the MS_* flags among KEPT_OPTIONS this mount has now
    options: frozenset[str]  # the file system's own (for cgroup v1: its controllers)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str, path: str | os.PathLike[str]) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what} {os.fspath(path)}: {os.strerror(errno)}")


def mount(source: str | os.PathLike[str] | None, target: str | os.PathLike[str], fstype: str | None,
          flags: int, options: str = "") -> None:
    encode = os.fsencode
    _check(_libc().mount(encode(source) if source is not None else None, encode(target),
                         fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                         options.encode() if options else None), "mount", target)


def remount(target: str | os.PathLike[str], flags: int) -> None:
    """Set the flags of the mount at `target` (this mount only, never its file system's)."""
    mount(None, target, None, MS_REMOUNT | MS_BIND | flags)


def bind(source: str | os.PathLike[str], target: str | os.PathLike[str], flags: int) -> None:
    """Mount the folder `source` also at `target`, with `flags` (MS_RDONLY, MS_NOSUID, ...)."""
    mount(source, target, None, MS_BIND)
    remount(target, flags)  # a bind takes no flags of its own when made


def unmount(target: str | os.PathLike[str]) -> None:
    """Detach the mount at `target`: it goes once nothing uses it any more."""
    _check(_libc().umount2(os.fsencode(target), MNT_DETACH), "umount", target)


def own_mount_namespace() -> None:
    """Move the calling thread, and the threads and processes it makes from now on, into a mount
    namespace of its own that receives the host's mounts but sends none back."""
    _check(_libc().unshare(CLONE_NEWNS), "unshare", "/")
    mount(None, "/", None, MS_REC | MS_SLAVE)


def mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[MountPoint]:
    """The mounts this process sees, in the order they were made."""
    points = []
    for line in mountinfo.read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        parts = fields.split()
        options = set(parts[5].split(","))
        flags = 0
        for option, flag in KEPT_OPTIONS.items():
            if option in options:
                flags |= flag
        path = ESCAPED.sub(lambda m: chr(int(m.group(1), 8)), parts[4])
        fstype, _source, super_options = [*tail.split(), "", "", ""][:3]
        points.append(MountPoint(path, fstype, flags, frozenset(super_options.split(","))))
    return points


def is_mount_point(path: Path) -> bool:
    return os.path.ismount(path)
