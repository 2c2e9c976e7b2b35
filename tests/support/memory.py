"""A submission folder held in memory: the rules see it exactly as they see a git tree or a directory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from leadersboard.rules import Entry


class MemoryFolder:
    """`files` maps '/'-separated paths to contents; `links` and `submodules` are paths of those kinds."""

    def __init__(self, name: str, files: Mapping[str, str | bytes], links: tuple[str, ...] = (),
                 submodules: tuple[str, ...] = ()) -> None:
        self.name = name
        self.files = {path: content.encode() if isinstance(content, str) else content
                      for path, content in files.items()}
        self.links = links
        self.submodules = submodules

    def entries(self) -> Iterator[Entry]:
        for path, content in self.files.items():
            yield Entry(path, "file", len(content))
        for path in self.links:
            yield Entry(path, "symlink")
        for path in self.submodules:
            yield Entry(path, "submodule")

    def read(self, path: str) -> bytes | None:
        return self.files.get(path)
