"""The file system a jailed job sees, built by its PID 1 in the job's own mount namespace.

- Nothing propagates back to the host (the namespace's mounts are private).
- Every mount of the host is read-only and nosuid here: the job's user could otherwise write where
  the host's permissions let anyone (/var/tmp, /run/lock, ...). Only this namespace's copies of the
  mounts change, never a file system.
- The hidden folders (the instance folder with its database, config, repository, MLflow store,
  site and every job's scratch; the data set folders; the worker's home) are covered by an empty,
  read-only tmpfs. The job's scratch folder is then bound back at its own path, writable; each data
  category read-only at workdir/<name>; and the interpreter's folders that were hidden (pyenv under
  root's home, say) read-only. Sources are opened before anything is covered, and bound from the
  open folder: a hidden path still reaches what it names.
- /tmp, /var/tmp and /dev/shm are private, writable tmpfs of a fixed size (covered before anything
  is bound back: an instance folder under /tmp still gets its scratch folder); /proc is the job's
  PID namespace's.

/proc and autofs mounts are left out of the read-only pass: /proc is replaced, and touching an
autofs trigger would mount what it stands for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, bind, mount, mount_points, remount

if TYPE_CHECKING:
    from .jail import JailSpec

HIDING_OPTIONS = "size=64k,mode=755"  # holds only the folders leading to what is bound back
READ_ONLY = MS_RDONLY | MS_NOSUID | MS_NODEV


def build_view(spec: JailSpec) -> None:
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    private = {"/tmp": spec.tmp_size, "/var/tmp": spec.tmp_size, "/dev/shm": spec.shm_size}  # noqa: S108
    covers = {path: f"size={size},mode=1777" for path, size in private.items()}
    covers |= {path: HIDING_OPTIONS for path in spec.hidden if path != "/"}
    covered = outermost(path for path in covers if os.path.isdir(path))  # inside one of them is gone anyway
    binds = [(spec.scratch, spec.scratch, MS_NOSUID | MS_NODEV)]
    binds += [(path, path, READ_ONLY) for path in outermost(spec.readable) if _inside_any(path, covered)]
    binds += [(source, os.path.join(spec.workdir, name), READ_ONLY | MS_NOEXEC) for name, source in spec.data.items()]
    binds += [(source, target, READ_ONLY | MS_NOEXEC) for target, source in spec.model_cache.items()]
    opened = [(os.open(source, os.O_PATH | os.O_DIRECTORY), target, flags) for source, target, flags in binds]

    for point in mount_points():
        if point.fstype != "autofs" and not _inside(point.path, "/proc"):
            _remount_existing(point.path, point.flags | MS_RDONLY | MS_NOSUID)
    for folder in covered:
        mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV | (0 if folder in private else MS_NOEXEC), covers[folder])
    for fd, target, flags in sorted(opened, key=lambda entry: entry[1].count("/")):  # outer ones first
        if _inside_any(target, covered):
            os.makedirs(target, exist_ok=True)
        bind(f"/proc/self/fd/{fd}", target, flags)
        os.close(fd)
    for folder in covered:
        if folder not in private:
            remount(folder, READ_ONLY | MS_NOEXEC)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def outermost(paths: Iterable[str]) -> list[str]:
    """The paths (normalised) that lie inside no other of them, shortest first."""
    chosen: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths}, key=lambda p: (p.count("/"), p)):
        if not _inside_any(path, chosen):
            chosen.append(path)
    return chosen


def _remount_existing(path: str, flags: int) -> None:
    with contextlib.suppress(FileNotFoundError):  # a mount point that vanished: nothing to reach there
        remount(path, flags)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _inside_any(path: str, folders: list[str]) -> bool:
    return any(_inside(path, folder) for folder in folders)

