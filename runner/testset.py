"""The test set of a verified benchmark as the platform knows it: per image, its opaque name in the
sealed view, its size, and the truth the job never sees (its label and, for a defect, its mask).

Masks stay on disk as paths and are read one at a time while scoring, so the memory a test set
needs does not grow with its number of images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

NORMAL = 0
ANOMALOUS = 1

BoolMap = NDArray[np.bool_]
MaskLoader = Callable[[Path], BoolMap]


@dataclass(frozen=True)
class TestImage:
    """One image of `test/` in the sealed view. `mask` marks its defective pixels (anomalous images
    only; None where the data set has no mask for it)."""

    __test__ = False  # a data class, not a test case (pytest collects names starting with "Test")

    name: str  # the file name in test/, e.g. 1a2b3c.png
    height: int
    width: int
    label: int  # NORMAL or ANOMALOUS
    mask: Path | None = None

    def __post_init__(self) -> None:
        if self.label not in (NORMAL, ANOMALOUS):
            raise ValueError(f"{self.name}: label must be {NORMAL} or {ANOMALOUS}, not {self.label!r}")
        if self.mask is not None and self.label == NORMAL:
            raise ValueError(f"{self.name}: a normal image has no mask")
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"{self.name}: size {self.height} x {self.width} is not an image size")

    @property
    def stem(self) -> str:
        """The name without its extension: the job writes this image's map as maps/<stem>.npy."""
        return Path(self.name).stem

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


def read_mask(path: Path) -> BoolMap:
    """A mask image as a 2-D bool array: a pixel is defective where its grey level is above 0
    (as anomalib reads masks)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L")) > 0
