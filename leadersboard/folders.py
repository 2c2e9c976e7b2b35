"""`FolderView`s over a git tree and over a local directory."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import FileMode

from .rules import MAX_DEPTH, Entry


class GitFolder:
    """A submission folder as a tree object in a repository."""

    def __init__(self, repo: pygit2.Repository, tree: pygit2.Tree, name: str) -> None:
        self.repo = repo
        self.tree = tree
        self.name = name

    def entries(self) -> Iterator[Entry]:
        # A stack, not recursion: a pushed tree may nest thousands of levels deep.
        todo: list[tuple[pygit2.Tree, str, int]] = [(self.tree, "", 1)]
        while todo:
            tree, prefix, depth = todo.pop()
            for item in tree:
                path = prefix + str(item.name)
                mode = item.filemode
                if mode == FileMode.TREE and depth >= MAX_DEPTH:
                    yield Entry(path, "too-deep")
                elif mode == FileMode.TREE:
                    todo.append((self.repo[item.id].peel(pygit2.Tree), path + "/", depth + 1))
                elif mode == FileMode.LINK:
                    yield Entry(path, "symlink")
                elif mode == FileMode.COMMIT:
                    yield Entry(path, "submodule")
                else:
                    _, size = self.repo.odb.read_header(item.id)
                    yield Entry(path, "file", size)

    def read(self, path: str) -> bytes | None:
        try:
            item: Any = self.tree[path]
        except KeyError:
            return None
        if item.filemode not in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
            return None
        return bytes(self.repo[item.id].read_raw())


class LocalFolder:
    """A submission folder on disk (`leadersboard validate PATH`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.resolve().name

    def entries(self) -> Iterator[Entry]:
        for root, dirs, files in os.walk(self.path):
            rel_root = Path(root).relative_to(self.path)
            if rel_root != Path(".") and (".git" in dirs or ".git" in files):
                yield Entry(rel_root.as_posix(), "submodule")
            dirs[:] = [d for d in dirs if d != ".git" and not _skipped(d)]
            for name in [*dirs, *files]:
                full = Path(root) / name
                rel = (rel_root / name).as_posix()
                info = full.lstat()
                if stat.S_ISLNK(info.st_mode):
                    yield Entry(rel, "symlink")
                elif stat.S_ISREG(info.st_mode) and not _skipped(name):
                    yield Entry(rel, "file", info.st_size)
            dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]

    def read(self, path: str) -> bytes | None:
        full = self.path / path
        if full.is_symlink() or not full.is_file():
            return None
        return full.read_bytes()


def _skipped(name: str) -> bool:
    """Files git would not commit by default in a typical checkout (caches)."""
    return name in {"__pycache__", ".ipynb_checkpoints"} or name.endswith(".pyc")
