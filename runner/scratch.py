"""A job's scratch folder (`HOME/scratch/<job>`): its working directory, home, temporary files,
local MLflow store and log; the one folder of the host a job may write, under either executor.

When the worker is root, the folder is a file system of its own: a tmpfs of `limits.job_scratch_size`
that the worker mounts before the checkout and unmounts at the end. A job that fills it meets "no
space left on device", not the host's disk. Its files are memory: they count against the job's
memory limit (the kernel charges a tmpfs page to whoever wrote it). A worker that is not root cannot
mount: its jobs' scratch folders are plain folders, without a size limit.

Before the job starts, the worker hands the folder to the sandbox's user (`hand_over`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .mounts import MS_NODEV, MS_NOSUID, is_mount_point, mount, unmount

SUBFOLDERS = ("home", "tmp")
SHARED_DIR_MODE = 0o1770  # the sandbox's group may add entries, but not move the worker's (sticky)


def can_limit() -> bool:
    """Whether this worker can give scratch folders a size (only root mounts)."""
    return os.geteuid() == 0


def create(scratch: Path, size_bytes: int | None) -> None:
    """A fresh scratch folder; its own file system of `size_bytes` when given."""
    remove(scratch)  # one left by an earlier try of the job
    scratch.mkdir(parents=True)
    if size_bytes is not None:
        mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_bytes},mode=0700")
    for name in SUBFOLDERS:
        (scratch / name).mkdir()


def remove(scratch: Path) -> None:
    """Unmount and delete the scratch folder (absent already is fine)."""
    while is_mount_point(scratch):  # detached: a file still open elsewhere does not keep it
        unmount(scratch)
    shutil.rmtree(scratch, ignore_errors=True)


def hand_over(scratch: Path, uid: int, gid: int) -> None:
    """Let the job's user write in the scratch folder and nowhere else.

    The folders the worker made (the scratch folder, work/, home/, tmp/) stay the worker's, with
    the sandbox's group allowed to add entries but, by the sticky bit, not to move or remove the
    worker's: the job log and the folders themselves cannot be swapped for links. What the
    submission checked in becomes its own. Only root can do this; another worker's jobs run as it."""
    if os.geteuid() != 0:
        return
    folders = [scratch, *(p for p in scratch.iterdir() if p.is_dir() and not p.is_symlink())]
    for folder in folders:
        os.chown(folder, 0, gid)
        os.chmod(folder, SHARED_DIR_MODE)
    for folder in folders[1:]:
        for parent, dirs, files in os.walk(folder):
            for entry in (*dirs, *files):
                os.lchown(Path(parent) / entry, uid, gid)
