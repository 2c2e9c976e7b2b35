"""Reading and checking a verified job's predictions: `predictions.csv` (header `image,score`, and
optionally `label`; one row per test image) and the optional maps beside it (`anomaly_maps.py`).

The file is hostile input: it is opened without following links, bounded by a size that the number
of test images sets, and parsed by the csv module. The first problem fails the job with one sentence
that names the file, the line (1-based, as an editor shows it) and what to fix.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .anomaly_maps import MAPS_DIR, AnomalyMaps, read_maps
from .testset import TestImage
from .untrusted import PredictionsError, open_file

IMAGE, SCORE, LABEL = "image", "score", "label"
HEADERS = ((IMAGE, SCORE), (IMAGE, SCORE, LABEL))  # the columns, in any order
HEADER_BYTES = 64
# A row beyond its image name: a score as Python or numpy prints a float64 (at most 24 characters),
# a label, commas, quotes and a CRLF, with room to spare.
ROW_BYTES = 64

__all__ = ["MAPS_DIR", "Predictions", "PredictionsError", "read_predictions"]


@dataclass(frozen=True)
class Predictions:
    """A job's checked predictions, one entry per test image in the order of `names`."""

    names: tuple[str, ...]
    scores: NDArray[np.float64]  # higher = more anomalous
    labels: NDArray[np.int8] | None  # the job's own 0/1 decisions; None without a label column
    maps: AnomalyMaps | None  # None when the job wrote no maps


def read_predictions(path: Path, images: Sequence[TestImage]) -> Predictions:
    """The predictions at `path` (and the maps in `maps/` beside it) for the test set `images`,
    checked; raises PredictionsError at the first problem."""
    if not images:
        raise ValueError("a verified test set has at least one image")
    if len({image.name for image in images}) != len(images):
        raise ValueError("two test images share a name")
    if len({image.stem for image in images}) != len(images):
        raise ValueError("two test images share a stem: their maps would share a name")
    scores, labels = _read_table(path, images)
    maps = read_maps(path.parent / MAPS_DIR, images)
    return Predictions(tuple(image.name for image in images), scores, labels, maps)


def max_table_bytes(images: Sequence[TestImage]) -> int:
    """The largest predictions file accepted for `images`: a header and one generous row each."""
    longest = max(len(image.name.encode()) for image in images)
    return HEADER_BYTES + len(images) * (longest + ROW_BYTES)


def _read_table(path: Path, images: Sequence[TestImage]) -> tuple[NDArray[np.float64], NDArray[np.int8] | None]:
    shown = path.name
    limit = max_table_bytes(images)
    why = f"for {len(images):,} test images (one short row each)"
    try:
        file = open_file(path, shown, limit, why)
    except FileNotFoundError:
        raise PredictionsError(f"{shown} was not written; the job's code must write its predictions to the path in "
                               f"LEADERSBOARD_PREDICTIONS") from None
    with file:
        data = file.read(limit + 1)
    if len(data) > limit:  # it grew after it was opened
        raise PredictionsError(f"{shown} is more than the {limit:,} bytes allowed {why}")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (as spreadsheet programs write) is allowed
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise PredictionsError(f"{shown} line {line}: not UTF-8 text; save the file as UTF-8") from None
    return _Table(shown, images).parse(text)


class _Table:
    """One pass over the rows, filling the scores (and labels) in the order of the test images."""

    def __init__(self, shown: str, images: Sequence[TestImage]) -> None:
        self.shown = shown
        self.index = {image.name: position for position, image in enumerate(images)}
        self.scores = np.full(len(images), np.nan)
        self.labels = np.full(len(images), -1, dtype=np.int8)
        self.lines = np.zeros(len(images), dtype=np.int64)  # the line of each image's row; 0: none yet

    def parse(self, text: str) -> tuple[NDArray[np.float64], NDArray[np.int8] | None]:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise PredictionsError(f"{self.shown} is empty; write the header image,score (or "
                                       f"image,score,label) and one row per test image")
            columns = self.columns(header)
            for row in reader:
                if row:  # blank lines are allowed
                    self.row(reader.line_num, row, columns)
        except csv.Error as error:
            raise self.error(f"{error}; write plain comma-separated values", reader.line_num) from None
        missing = np.flatnonzero(self.lines == 0)
        if missing.size:
            names = list(self.index)
            count = "1 test image has" if missing.size == 1 else f"{missing.size:,} test images have"
            raise self.error(f"{count} no row, e.g. {names[missing[0]]}; write one row per file in test/")
        return self.scores, (self.labels if LABEL in columns else None)

    def columns(self, header: list[str]) -> dict[str, int]:
        names = [name.strip() for name in header]
        if tuple(sorted(names)) not in {tuple(sorted(h)) for h in HEADERS} or len(set(names)) != len(names):
            raise self.error(f"the header is {_quote(','.join(header))}; it must be image,score or "
                             f"image,score,label", 1)
        return {name: position for position, name in enumerate(names)}

    def row(self, line: int, row: list[str], columns: dict[str, int]) -> None:
        if len(row) != len(columns):
            raise self.error(f"{len(row)} values, the header has {len(columns)}; write one value per column", line)
        name = row[columns[IMAGE]]
        position = self.index.get(name)
        if position is None:
            raise self.error(f"image {_quote(name)} is not a file in test/; write the test images' file names as "
                             f"they are", line)
        if self.lines[position]:
            raise self.error(f"image {_quote(name)} already has a row (line {self.lines[position]}); write each "
                             f"test image once", line)
        self.lines[position] = line
        self.scores[position] = self.score(row[columns[SCORE]], line)
        if LABEL in columns:
            self.labels[position] = self.label(row[columns[LABEL]], line)

    def score(self, text: str, line: int) -> float:
        try:
            value = float(text)
        except ValueError:
            raise self.error(f"score {_quote(text)} is not a number; write a decimal number, higher for more "
                             f"anomalous", line) from None
        if not math.isfinite(value):
            raise self.error(f"score {_quote(text)} is not a finite number; write a finite number", line)
        return value

    def label(self, text: str, line: int) -> int:
        value = text.strip()
        if value not in ("0", "1"):
            raise self.error(f"label {_quote(text)} is not 0 or 1; write 1 for anomalous, 0 for normal", line)
        return int(value)

    def error(self, problem: str, line: int | None = None) -> PredictionsError:
        where = f"{self.shown} line {line}" if line else self.shown
        return PredictionsError(f"{where}: {problem}")


def _quote(text: str) -> str:
    """A value from the file, quoted and cut short: messages stay one readable line."""
    return repr(text if len(text) <= 40 else text[:40] + "...")
