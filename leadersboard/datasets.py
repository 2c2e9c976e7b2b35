"""The registered data sets: where each lives, its layout and categories, how its benchmarks are
scored, and its version (a digest of its content), as `dataset add` records them in the config file.

    datasets:
      visa:
        path: /data/visa
        layout: visa
        scoring: self_reported      # or verified: the platform scores predictions on hidden labels
        categories: [candle, pcb1]
        version: sha256:9f86d0...   # changes whenever a file of the data set changes

An entry written by an older version as `visa: /data/visa` still loads (layout and categories then
unknown until `dataset add` registers it again).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dataset_layouts import LAYOUTS, detect

SCORINGS = ("self_reported", "verified")
HASH_CHUNK = 1024 * 1024


class DatasetError(Exception):
    """A data set entry or folder that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    layout: str = ""  # one of LAYOUTS; empty for an entry registered before layouts were recorded
    scoring: str = "self_reported"
    categories: tuple[str, ...] = field(default_factory=tuple)
    version: str = ""

    @property
    def verified(self) -> bool:
        return self.scoring == "verified"

    def has_category(self, category: str) -> bool:
        """Whether `category` is one of this data set's (any sub-folder, for an entry without a record)."""
        return category in self.categories if self.categories else (self.path / category).is_dir()

    def to_config(self) -> dict[str, Any]:
        return {"path": str(self.path), "layout": self.layout, "scoring": self.scoring,
                "categories": list(self.categories), "version": self.version}

    @classmethod
    def from_config(cls, name: str, raw: object) -> Dataset:
        if isinstance(raw, str):
            return cls(name, Path(raw))
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
            raise DatasetError(f"Config 'datasets.{name}' must be a folder or a mapping with 'path'")
        unknown = set(raw) - {"path", "layout", "scoring", "categories", "version"}
        if unknown:
            raise DatasetError(f"Config 'datasets.{name}' has unknown keys: {', '.join(sorted(unknown))}")
        scoring = raw.get("scoring", "self_reported")
        layout = raw.get("layout", "")
        categories = raw.get("categories") or []
        if scoring not in SCORINGS:
            raise DatasetError(f"Config 'datasets.{name}.scoring' must be one of: {', '.join(SCORINGS)}")
        if layout not in ("", *LAYOUTS):
            raise DatasetError(f"Config 'datasets.{name}.layout' must be one of: {', '.join(LAYOUTS)}")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise DatasetError(f"Config 'datasets.{name}.categories' must be a list of names")
        return cls(name, Path(raw["path"]), layout, scoring, tuple(categories), str(raw.get("version") or ""))


def register(name: str, path: Path, layout: str = "auto", scoring: str = "self_reported") -> Dataset:
    """Inspect the folder at `path` and make its entry: layout and categories checked, version computed."""
    if scoring not in SCORINGS:
        raise DatasetError(f"--scoring must be one of: {', '.join(SCORINGS)}")
    folder = path.expanduser().resolve()
    found_layout, categories = detect(folder, layout)
    return Dataset(name, folder, found_layout, scoring, tuple(categories), content_version(folder))


def content_version(folder: Path) -> str:
    """A digest of every file under `folder` (relative path and content), in a stable order."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            path = Path(root) / name
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            with path.open("rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
    return "sha256:" + digest.hexdigest()
