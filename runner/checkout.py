"""Writing one submission folder of one commit to disk, straight from the object database."""

from __future__ import annotations

from pathlib import Path

import pygit2
from pygit2.enums import FileMode


class CheckoutError(Exception):
    """The commit or folder is not in the repository."""


def checkout_folder(repo_path: Path, commit_id: str, folder: str, dest: Path) -> None:
    """Write `folder` of `commit_id` into `dest` (regular files only; the rules refuse links)."""
    repo = pygit2.Repository(str(repo_path))
    try:
        tree = repo[commit_id].peel(pygit2.Tree)
        entry = tree[folder]
    except (KeyError, ValueError) as exc:
        raise CheckoutError(f"{folder} is not in commit {commit_id}") from exc
    if entry.filemode != FileMode.TREE:
        raise CheckoutError(f"{folder} in commit {commit_id} is not a folder")
    _write_tree(repo, repo[entry.id].peel(pygit2.Tree), dest)


def _write_tree(repo: pygit2.Repository, tree: pygit2.Tree, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in tree:
        name = str(item.name)
        if name in (".", "..") or "/" in name:
            continue
        target = dest / name
        if item.filemode == FileMode.TREE:
            _write_tree(repo, repo[item.id].peel(pygit2.Tree), target)
        elif item.filemode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
            target.write_bytes(repo[item.id].read_raw())
            target.chmod(0o755 if item.filemode == FileMode.BLOB_EXECUTABLE else 0o644)
