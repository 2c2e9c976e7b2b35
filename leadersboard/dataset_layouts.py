"""The folder layouts a data set may have, and what each category holds in it.

- `visa`:  CATEGORY/Data/Images/Normal/*, CATEGORY/Data/Images/Anomaly/*, masks with the same stem in
  CATEGORY/Data/Masks/Anomaly/; with VisA's own split in `split_csv/1cls.csv` at the top when present.
- `mvtec`: CATEGORY/train/good/*, CATEGORY/test/good/*, CATEGORY/test/DEFECT/*, masks in
  CATEGORY/ground_truth/DEFECT/STEM_mask.png.
- `folder`: CATEGORY/normal/*, CATEGORY/abnormal/*, masks with the same stem in CATEGORY/masks/.

A category is a sub-folder laid out so, holding at least one normal image; anything else at the top
(VisA's `split_csv/`, a README) is not a category.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

LAYOUTS = ("visa", "mvtec", "folder")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
VISA_SPLIT = Path("split_csv") / "1cls.csv"
HELD_OUT_SHARE = 0.2  # of the normal images, for a test split the data set does not define itself


class LayoutError(Exception):
    """The folder does not hold a data set of the layout asked for; the message says what is expected."""


@dataclass(frozen=True)
class EvalImage:
    path: Path  # relative to the data set folder
    anomalous: bool
    mask: Path | None = None  # relative to the data set folder


@dataclass
class CategorySplit:
    """One category's images, split the way verified scoring uses them."""

    train: list[Path] = field(default_factory=list)  # normal images only, relative to the data set folder
    test: list[EvalImage] = field(default_factory=list)
    how: str = ""  # where the split comes from, in words


def images(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted; none when it is not a folder."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def categories(root: Path, layout: str) -> list[str]:
    """The categories of `root` in `layout`, sorted."""
    normal = {"visa": Path("Data/Images/Normal"), "mvtec": Path("train/good"), "folder": Path("normal")}[layout]
    return sorted(entry.name for entry in root.iterdir()
                  if entry.is_dir() and not entry.name.startswith(".") and images(entry / normal))


def detect(root: Path, layout: str = "auto") -> tuple[str, list[str]]:
    """(layout, categories) of the data set at `root`; `LayoutError` when no category is found."""
    if not root.is_dir():
        raise LayoutError(f"{root} is not a folder")
    for candidate in LAYOUTS if layout == "auto" else (layout,):
        found = categories(root, candidate)
        if found:
            return candidate, found
    expected = ("a visa data set holds CATEGORY/Data/Images/Normal/*.png (and Anomaly/, Masks/), an mvtec one "
                "CATEGORY/train/good/*.png (and test/, ground_truth/), a folder one CATEGORY/normal/*.png "
                "(and abnormal/, masks/)")
    asked = "" if layout == "auto" else f" in the {layout} layout"
    raise LayoutError(f"no category found in {root}{asked}: {expected}")


def split(root: Path, layout: str, category: str, seed: str) -> CategorySplit:
    """The train/test split of one category; `seed` fixes a split the data set does not define."""
    if layout == "mvtec":
        return _mvtec(root, category)
    if layout == "visa" and (root / VISA_SPLIT).is_file():
        return _visa_csv(root, category)
    normal_dir, abnormal_dir, mask_dir = {
        "visa": ("Data/Images/Normal", "Data/Images/Anomaly", "Data/Masks/Anomaly"),
        "folder": ("normal", "abnormal", "masks"),
    }[layout]
    base = root / category
    normals = [p.relative_to(root) for p in images(base / normal_dir)]
    random.Random(f"{seed}/{category}").shuffle(normals)
    held_out = max(1, round(len(normals) * HELD_OUT_SHARE)) if len(normals) > 1 else 0
    masks = {p.stem: p.relative_to(root) for p in images(base / mask_dir)}
    test = [EvalImage(p, False) for p in sorted(normals[:held_out])]
    test += [EvalImage(p.relative_to(root), True, masks.get(p.stem)) for p in images(base / abnormal_dir)]
    return CategorySplit(sorted(normals[held_out:]), test,
                         f"{held_out} of {len(normals)} normal images held out for testing (seeded by the version)")


def _mvtec(root: Path, category: str) -> CategorySplit:
    base = root / category
    test: list[EvalImage] = []
    for folder in sorted(p for p in (base / "test").iterdir() if p.is_dir()) if (base / "test").is_dir() else []:
        for image in images(folder):
            mask = base / "ground_truth" / folder.name / f"{image.stem}_mask.png"
            anomalous = folder.name != "good"
            test.append(EvalImage(image.relative_to(root), anomalous,
                                  mask.relative_to(root) if anomalous and mask.is_file() else None))
    return CategorySplit([p.relative_to(root) for p in images(base / "train" / "good")], test,
                         "the data set's own train/ and test/ folders")


def _visa_csv(root: Path, category: str) -> CategorySplit:
    """VisA's `split_csv/1cls.csv`: object, split (train/test), label (normal/anomaly), image, mask."""
    result = CategorySplit(how=f"the data set's own {VISA_SPLIT}")
    with (root / VISA_SPLIT).open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row.get("object") != category:
                continue
            image = Path(row["image"])
            anomalous = row.get("label") == "anomaly"
            if row.get("split") == "train" and not anomalous:
                result.train.append(image)
            elif row.get("split") == "test":
                mask = Path(row["mask"]) if anomalous and row.get("mask") else None
                result.test.append(EvalImage(image, anomalous, mask))
    return result
