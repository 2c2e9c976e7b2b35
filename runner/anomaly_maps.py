"""A verified job's anomaly maps: `maps/<image stem>.npy` next to its predictions file, one per test
image or none at all; each a 2-D float array of the image's height x width, finite.

Every map is read twice, one at a time: when the predictions are checked (which also finds the
range of all values, for the pixel metrics' bins) and when they are scored. Each read checks it
again, so the two reads cannot disagree. A map may be float64 at most, so the maps of a test set
take at most 8 bytes per test pixel (and a small header each) on disk, and one map in memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .testset import TestImage
from .untrusted import PredictionsError, open_file, open_folder

MAPS_DIR = "maps"
SUFFIX = ".npy"
MAX_ITEM_BYTES = 8  # float64
HEADER_BYTES = 4096  # numpy.save writes 128 bytes for a 2-D array; room for any valid header of one

FloatMap = NDArray[np.floating]


@dataclass(frozen=True)
class AnomalyMaps:
    """A job's maps, all present and valid when they were checked; `low`/`high`: the smallest and
    largest value over all of them."""

    folder: Path
    low: float
    high: float

    def read(self, image: TestImage) -> FloatMap:
        """The map of `image`, checked again as it is read."""
        with _folder(self.folder) as fd:
            if fd is None:
                raise PredictionsError(f"{MAPS_DIR}/ disappeared while the predictions were scored")
            return _read_map(fd, image)


def read_maps(folder: Path, images: Sequence[TestImage]) -> AnomalyMaps | None:
    """The job's maps in `folder`, checked; None when it wrote none (no folder, or an empty one)."""
    stems = {image.stem: image for image in images}  # unique: read_predictions checks
    with _folder(folder) as fd:
        if fd is None:
            return None
        present = _listing(fd, stems, len(images))
        if not present:
            return None
        missing = [image.stem + SUFFIX for image in images if image.stem not in present]
        if missing:
            count = "1 test image has" if len(missing) == 1 else f"{len(missing):,} test images have"
            raise PredictionsError(f"{MAPS_DIR}/: {count} no map, e.g. {missing[0]}; write one map per test image, "
                                   f"or none")
        low, high = np.inf, -np.inf
        for image in images:
            values = _read_map(fd, image)
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    return AnomalyMaps(folder, low, high)


@contextlib.contextmanager
def _folder(folder: Path) -> Iterator[int | None]:
    fd = open_folder(folder, f"{MAPS_DIR}/")
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _listing(fd: int, stems: dict[str, TestImage], expected: int) -> set[str]:
    """The stems that have a map; anything else in the folder is refused (the first by name). Stops
    reading a folder that holds more entries than there are test images."""
    present: set[str] = set()
    others: list[str] = []
    with os.scandir(fd) as entries:
        for count, entry in enumerate(entries, start=1):
            stem, suffix = os.path.splitext(entry.name)
            if suffix == SUFFIX and stem in stems:
                present.add(stem)
            else:
                others.append(entry.name)
            if count > expected:
                break
    if others:
        raise PredictionsError(f"{MAPS_DIR}/{_quote(min(others))} is not the map of a test image; {MAPS_DIR}/ may "
                               f"hold only <image stem>{SUFFIX} files, one per file in test/")
    return present


def _read_map(fd: int, image: TestImage) -> FloatMap:
    name = image.stem + SUFFIX
    shown = f"{MAPS_DIR}/{name}"
    height, width = image.shape
    limit = height * width * MAX_ITEM_BYTES + HEADER_BYTES
    try:
        file = open_file(name, shown, limit, f"for a {height} x {width} image (float64 at most)", dir_fd=fd)
    except FileNotFoundError:
        raise PredictionsError(f"{shown} disappeared while the predictions were checked") from None
    with file:
        # The header first: a false one must not make numpy allocate what it claims.
        try:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f"format version {version}")
        except (ValueError, OSError, EOFError):
            raise PredictionsError(f"{shown} is not a .npy file of a plain array; write it with numpy.save") from None
        if dtype.kind != "f" or dtype.itemsize > MAX_ITEM_BYTES:
            raise PredictionsError(f"{shown}: values of type {dtype}; save a float array (float32 or float64)")
        if shape != image.shape:
            raise PredictionsError(f"{shown}: shape {shape}, the image is {height} x {width}; save a 2-D array of "
                                   f"the image's height x width")
        file.seek(0)
        try:
            values: FloatMap = np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise PredictionsError(f"{shown} is cut short or unreadable; write it with numpy.save") from None
    bad = values.size - int(np.count_nonzero(np.isfinite(values)))
    if bad:
        raise PredictionsError(f"{shown}: {bad:,} value{'s are' if bad > 1 else ' is'} not a finite number "
                               f"(NaN or infinity); write finite numbers")
    return values


def _quote(name: str) -> str:
    return name if len(name) <= 60 and name.isprintable() else repr(name[:60])
