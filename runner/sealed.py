"""The sealed view of one category of a verified data set: all a verified job sees of it.

    HOME/sealed/DATASET/VERSION/CATEGORY/
        view/train/...        the training images (normal only), under their own names
        view/test/ID.EXT      every test image under an opaque random id; no sub-folders, no masks
        truth.json            id -> label, mask and original path: read by the scorer, never mounted

Built once per data set version (a changed data set has another version, so another view) by the
first job that needs it, under a lock, into a temporary folder renamed into place when complete.
Test images are copied (not linked: a link shares the original's times and inode) with one fixed
modification time, in a random order under random names, so nothing in the view tells an image's
label, its original name or its place among the originals.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from leadersboard.dataset_layouts import CategorySplit, split
from leadersboard.datasets import Dataset

from .testset import ANOMALOUS, NORMAL, TestImage

FIXED_MTIME = 946684800  # 2000-01-01: every file of a view has it
TRUTH_FILE = "truth.json"


class SealError(Exception):
    """The view cannot be built (a split with no test image, a file outside the data set)."""


@dataclass(frozen=True)
class SealedView:
    train: Path
    test: Path
    truth_path: Path

    def test_set(self) -> list[TestImage]:
        """The test images as the scorer knows them: their names in `test/`, sizes, labels and masks."""
        document = json.loads(self.truth_path.read_text(encoding="utf-8"))
        return [TestImage(name, entry["height"], entry["width"], entry["label"],
                          Path(entry["mask"]) if entry["mask"] else None)
                for name, entry in sorted(document["images"].items())]


def sealed_view(sealed_root: Path, dataset: Dataset, category: str) -> SealedView:
    """The category's view, built first when this data set version has none yet."""
    home = sealed_root / dataset.name / (dataset.version.removeprefix("sha256:")[:16] or "unversioned") / category
    view = SealedView(home / "view" / "train", home / "view" / "test", home / TRUTH_FILE)
    if view.truth_path.is_file():
        return view
    home.parent.mkdir(parents=True, exist_ok=True)
    with _lock(home.parent / f".{category}.lock"):
        if not view.truth_path.is_file():  # built by another worker while this one waited
            _build(home, dataset, category)
    return view


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(home: Path, dataset: Dataset, category: str) -> None:
    parts = split(dataset.path, dataset.layout, category, dataset.version)
    if not parts.test:
        raise SealError(f"{dataset.name}/{category} has no test image to score on")
    staging = Path(tempfile.mkdtemp(prefix=f".{category}.building-", dir=home.parent))
    try:
        train, test = staging / "view" / "train", staging / "view" / "test"
        train.mkdir(parents=True)
        test.mkdir()
        for source in parts.train:
            _copy(_inside(dataset.path, source), train / source.name)
        images = _seal_test(dataset.path, parts, test)
        truth = {"dataset": dataset.name, "version": dataset.version, "category": category, "split": parts.how,
                 "images": images}
        (staging / TRUTH_FILE).write_text(json.dumps(truth, indent=1), encoding="utf-8")
        (staging / TRUTH_FILE).chmod(0o600)
        for folder in (train, test, train.parent):
            folder.chmod(0o755)
            os.utime(folder, (FIXED_MTIME, FIXED_MTIME))
        shutil.rmtree(home, ignore_errors=True)  # a half-built view left by a crash
        os.replace(staging, home)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _seal_test(root: Path, parts: CategorySplit, test: Path) -> dict[str, dict[str, object]]:
    order = list(parts.test)
    secrets.SystemRandom().shuffle(order)
    images: dict[str, dict[str, object]] = {}
    for item in order:
        source = _inside(root, item.path)
        name = f"{secrets.token_hex(8)}{source.suffix.lower()}"
        _copy(source, test / name)
        with Image.open(source) as picture:
            width, height = picture.size
        mask = _inside(root, item.mask) if item.mask is not None else None
        images[name] = {"label": ANOMALOUS if item.anomalous else NORMAL, "mask": str(mask) if mask else None,
                        "source": str(item.path), "height": height, "width": width}
    return dict(sorted(images.items()))


def _inside(root: Path, relative: Path) -> Path:
    path = (root / relative).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        raise SealError(f"{relative} is not a file inside the data set {root}")
    return path


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    target.chmod(0o444)
    os.utime(target, (FIXED_MTIME, FIXED_MTIME))
