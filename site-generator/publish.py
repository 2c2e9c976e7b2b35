"""Atomic publishing: readers of `out_dir` see the old site or the new one, never half of one.

`out_dir` is a symbolic link to a versioned sibling directory (`.<name>.v<time>`). A build writes into a
fresh sibling (`.<name>.building-…`), renames it to its version name, and swaps the link with
`os.replace` on a temporary link: rename(2) replaces the link in one step, so the path always resolves
to a complete site. Afterwards versions older than the previous one are removed; the previous one is
kept one build longer so that a reader who resolved the link just before the switch can finish.
A web server must resolve the link per request (Starlette's StaticFiles does) rather than once.

An exclusive lock on `.<name>.lock` serialises builds (several workers may build at once) so that one
build never removes a version another is about to link. The lock also guards the cache file.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PublishError(Exception):
    """`out_dir` exists and is not a site this module published."""


@contextmanager
def site_lock(out_dir: Path) -> Iterator[None]:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with (out_dir.parent / f".{out_dir.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def staging_dir(out_dir: Path) -> Path:
    """A new, empty directory next to `out_dir` to build into (same file system, so renames are atomic)."""
    _check_target(out_dir)
    path = out_dir.parent / f".{out_dir.name}.building-{time.time_ns()}-{secrets.token_hex(4)}"
    path.mkdir(parents=True)
    return path


def switch(out_dir: Path, staged: Path) -> Path:
    """Make `out_dir` point at `staged`; returns the published version directory."""
    _check_target(out_dir)
    version = out_dir.parent / f".{out_dir.name}.v{time.time_ns():020d}"
    staged.rename(version)
    previous = os.readlink(out_dir) if out_dir.is_symlink() else None
    if out_dir.is_dir() and not out_dir.is_symlink():
        out_dir.rmdir()  # an empty directory made by someone beforehand (_check_target refused a full one)
    link = out_dir.parent / f".{out_dir.name}.link-{secrets.token_hex(4)}"
    os.symlink(version.name, link)  # relative, so the site's parent directory can move
    os.replace(link, out_dir)
    _remove_old_versions(out_dir, keep={version.name, previous or ""})
    return version


def discard(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)


def _check_target(out_dir: Path) -> None:
    if out_dir.is_symlink() or not out_dir.exists():
        return
    if not out_dir.is_dir() or any(out_dir.iterdir()):
        raise PublishError(f"{out_dir} exists and is not a published site (a link to a version directory); "
                           "choose another --out, or remove it.")


def _remove_old_versions(out_dir: Path, keep: set[str]) -> None:
    prefix = f".{out_dir.name}."
    for path in out_dir.parent.iterdir():
        name = path.name
        if not name.startswith(prefix) or name in keep:
            continue
        kind = name[len(prefix):]
        # Leftovers of builds that died: their staging directories and links (we hold the lock, none is live).
        if kind.startswith(("v", "building-")) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif kind.startswith("link-") and path.is_symlink():
            path.unlink(missing_ok=True)
