"""Helpers for the verified scoring's tests, all on real files: a sealed view made from a generated
MVTec-layout category, test sets with masks, predictions files and maps as a job writes them."""

from __future__ import annotations

import csv
import hashlib
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from leadersboard.local.datagen import encode_png
from leadersboard.runner.testset import ANOMALOUS, NORMAL, TestImage


@dataclass(frozen=True)
class SealedView:
    """What a verified job sees (`train`, `test`) and what it does not (`truth`)."""

    train: Path
    test: Path
    truth: list[TestImage]


def seal_category(category: Path, out: Path, salt: str = "test") -> SealedView:
    """A sealed view of an MVTec-layout category (`train/good`, `test/<kind>`, `ground_truth/<kind>`):
    `out/train/` holds the normal training images as they are; `out/test/` every test image under an
    opaque name (a digest of its path), flat, without masks or labels; `truth` keeps those aside."""
    train, test = out / "train", out / "test"
    train.mkdir(parents=True)
    test.mkdir()
    for image in sorted((category / "train" / "good").iterdir()):
        shutil.copyfile(image, train / image.name)
    truth = []
    for image in sorted((category / "test").glob("*/*")):
        kind = image.parent.name
        opaque = hashlib.sha256(f"{salt}/{kind}/{image.name}".encode()).hexdigest()[:12] + image.suffix
        shutil.copyfile(image, test / opaque)
        with Image.open(image) as opened:
            width, height = opened.size
        if kind == "good":
            truth.append(TestImage(opaque, height, width, NORMAL))
        else:
            mask = category / "ground_truth" / kind / f"{image.stem}_mask.png"
            truth.append(TestImage(opaque, height, width, ANOMALOUS, mask if mask.is_file() else None))
    return SealedView(train, test, sorted(truth, key=lambda image: image.name))


def make_test_set(folder: Path, labels: Sequence[int], size: tuple[int, int] = (16, 16),
                  seed: int = 0) -> list[TestImage]:
    """Test images named img<i>.png of `size` (height, width), with a mask of one or two random
    rectangles for every anomalous one, written as PNG files in `folder`. Only the masks are files:
    scoring never reads the images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    height, width = size
    images = []
    for index, label in enumerate(labels):
        mask_path = None
        if label == ANOMALOUS:
            mask = np.zeros(size, dtype=bool)
            for _ in range(int(rng.integers(1, 3))):
                top, left = int(rng.integers(0, height - 2)), int(rng.integers(0, width - 2))
                mask[top:top + int(rng.integers(2, 6)), left:left + int(rng.integers(2, 6))] = True
            mask_path = folder / f"img{index}_mask.png"
            write_mask(mask_path, mask)
        images.append(TestImage(f"img{index}.png", height, width, label, mask_path))
    return images


def write_mask(path: Path, mask: NDArray[np.bool_]) -> None:
    height, width = mask.shape
    path.write_bytes(encode_png(width, height, 1, (mask.astype(np.uint8) * 255).tobytes()))


def write_predictions(path: Path, rows: Iterable[Sequence[object]], header: Sequence[str] = ("image", "score"),
                      ) -> Path:
    """predictions.csv as a job writes it with the csv module (floats as Python prints them)."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_maps(folder: Path, images: Sequence[TestImage], maps: Sequence[NDArray[np.floating]]) -> None:
    """maps/<stem>.npy, one per image."""
    folder.mkdir(parents=True, exist_ok=True)
    for image, values in zip(images, maps, strict=True):
        np.save(folder / f"{image.stem}.npy", values)


def true_masks(images: Sequence[TestImage]) -> list[NDArray[np.bool_]]:
    """Each image's mask as a bool array (all False for a normal image)."""
    masks = []
    for image in images:
        if image.mask is None:
            masks.append(np.zeros(image.shape, dtype=bool))
        else:
            with Image.open(image.mask) as opened:
                masks.append(np.asarray(opened.convert("L")) > 0)
    return masks
