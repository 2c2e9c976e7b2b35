"""Opening the files a job wrote: they are hostile input. A name that is a link (symbolic or hard), a
folder, a pipe or a device is refused, and so is a file over the size the caller allows, before a
byte of it is read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

# O_NONBLOCK: opening a named pipe for reading would otherwise wait for a writer that never comes.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FOLDER_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


class PredictionsError(Exception):
    """The job's predictions break the verified contract. The message is one sentence for the
    participant: which file (and line), what is wrong, what to do. It never tells anything of the
    test set's truth."""


def open_file(path: Path | str, shown: str, max_bytes: int, why: str, dir_fd: int | None = None) -> BinaryIO:
    """`path` (relative to `dir_fd` when given) opened for reading, if it is a regular file of its own
    of at most `max_bytes`; `shown` names it in messages, `why` says where the bound comes from.
    A missing file raises FileNotFoundError: what that means is the caller's to say."""
    try:
        fd = os.open(path, _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise PredictionsError(_refusal(shown, error, "write a regular file")) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PredictionsError(f"{shown} is not a regular file (a folder, a pipe or a device); write a "
                                   f"regular file")
        if info.st_nlink != 1:
            # A hard link could carry out a file the job may not read; the platform reads as itself.
            raise PredictionsError(f"{shown} is a hard link to another file; write a file of its own")
        if info.st_size > max_bytes:
            raise PredictionsError(f"{shown} is {info.st_size:,} bytes, more than the {max_bytes:,} bytes allowed "
                                   f"{why}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_folder(path: Path, shown: str) -> int | None:
    """A file descriptor of the folder `path` (the caller closes it), None when there is none; a link
    or a file in its place is refused."""
    try:
        return os.open(path, _FOLDER_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise PredictionsError(_refusal(shown, error, "make it a plain folder", path)) from None


def _refusal(shown: str, error: OSError, fix: str, path: Path | None = None) -> str:
    # With O_DIRECTORY, Linux says ENOTDIR for a link to a folder: look at the name to say which.
    link = error.errno == errno.ENOTDIR and path is not None and path.is_symlink()
    if error.errno == errno.ELOOP or link:
        return f"{shown} is a symbolic link; {fix}"
    if error.errno == errno.ENOTDIR:
        return f"{shown} is not a folder; {fix}"
    return f"{shown} cannot be opened ({error.strerror}); {fix}"
