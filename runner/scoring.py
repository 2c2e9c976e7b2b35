"""The official metrics of a verified job, computed by the platform from the job's checked
predictions and the test set's truth, which the job never sees:

- `auroc`: image-level AUROC of the scores (scikit-learn's `roc_auc_score`, exact);
- `f1_score`: F1 of the job's own labels when it wrote a label column, else the best F1 over every
  threshold of its scores (scikit-learn's `precision_recall_curve`); `f1_method` says which, and
  `f1_threshold` is the threshold chosen;
- `pixel_auroc` and `aupro` (FPR limit 0.3, as anomalib's AUPRO) when the job wrote maps and the
  data set has masks; computed in bounded memory, see `pixel_metrics.py`.

A metric that the inputs leave undefined (a test set of one class, no maps, no masks) is None, with
the reason in `Scores.missing`. Only these aggregates are ever shown to the participant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import f1_score, precision_recall_curve, roc_auc_score

from leadersboard import contract as c

from .pixel_metrics import BINS, PixelHistogram, aupro, pixel_auroc
from .predictions import Predictions
from .testset import ANOMALOUS, NORMAL, BoolMap, MaskLoader, TestImage, read_mask

F1_FROM_LABELS = "label"  # the job's label column
F1_BEST_THRESHOLD = "best_threshold"  # no label column: the threshold of its scores that maximises F1


@dataclass(frozen=True)
class Scores:
    auroc: float | None = None
    f1_score: float | None = None
    f1_method: str | None = None  # F1_FROM_LABELS or F1_BEST_THRESHOLD
    f1_threshold: float | None = None  # with F1_BEST_THRESHOLD: a score at or above it counts as anomalous
    pixel_auroc: float | None = None
    pixel_auroc_max_error: float | None = None  # the binned pixel AUROC is within this of the exact one
    aupro: float | None = None
    missing: dict[str, str] = field(default_factory=dict)  # metric name -> why it was not computed

    def metrics(self) -> dict[str, float]:
        """The metrics that were computed, by their names on the leaderboard."""
        values = {c.METRIC_AUROC: self.auroc, c.METRIC_F1: self.f1_score, c.METRIC_PIXEL_AUROC: self.pixel_auroc,
                  c.METRIC_AUPRO: self.aupro}
        return {name: value for name, value in values.items() if value is not None}

    def tags(self) -> dict[str, str]:
        """How the metrics were made, for the job's run."""
        tags = {}
        if self.f1_method is not None:
            tags[c.TAG_F1_METHOD] = self.f1_method
        if self.f1_threshold is not None:
            tags[c.TAG_F1_THRESHOLD] = repr(self.f1_threshold)
        if self.pixel_auroc_max_error is not None:
            tags[c.TAG_PIXEL_AUROC_MAX_ERROR] = f"{self.pixel_auroc_max_error:.3g}"
        return tags


def score(images: Sequence[TestImage], predictions: Predictions, load_mask: MaskLoader = read_mask,
          bins: int = BINS) -> Scores:
    """The metrics of `predictions` (checked for exactly these `images`, in this order). Masks are
    read with `load_mask`, one at a time."""
    if predictions.names != tuple(image.name for image in images):
        raise ValueError("the predictions were checked against another test set")
    missing: dict[str, str] = {}
    auroc, f1, f1_method, f1_threshold = _image_metrics(images, predictions, missing)
    pixel_auroc, max_error, pro = _pixel_metrics(images, predictions, load_mask, bins, missing)
    return Scores(auroc=auroc, f1_score=f1, f1_method=f1_method, f1_threshold=f1_threshold, pixel_auroc=pixel_auroc,
                  pixel_auroc_max_error=max_error, aupro=pro, missing=missing)


def _image_metrics(images: Sequence[TestImage], predictions: Predictions,
                   missing: dict[str, str]) -> tuple[float | None, float | None, str | None, float | None]:
    """auroc, f1_score, f1_method, f1_threshold."""
    truth = np.array([image.label for image in images], dtype=np.int8)
    classes = np.unique(truth)
    if classes.size < 2:
        why = f"the test set has only {'normal' if classes[0] == NORMAL else 'anomalous'} images"
        missing.update({c.METRIC_AUROC: why, c.METRIC_F1: why})
        return None, None, None, None
    auroc = float(roc_auc_score(truth, predictions.scores))
    if predictions.labels is not None:
        return auroc, float(f1_score(truth, predictions.labels, zero_division=0.0)), F1_FROM_LABELS, None
    f1, threshold = _best_f1(truth, predictions.scores)
    return auroc, f1, F1_BEST_THRESHOLD, threshold


def _best_f1(truth: NDArray[np.int8], scores: NDArray[np.float64]) -> tuple[float, float]:
    """The highest F1 over the thresholds of `scores` (anomalous: score >= threshold), and its threshold."""
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


def _pixel_metrics(images: Sequence[TestImage], predictions: Predictions, load_mask: MaskLoader, bins: int,
                   missing: dict[str, str]) -> tuple[float | None, float | None, float | None]:
    """pixel_auroc, its max error, aupro."""
    maps = predictions.maps
    if maps is None or not any(image.mask is not None for image in images):
        why = "the job wrote no anomaly maps" if maps is None else "the data set has no masks"
        missing.update({c.METRIC_PIXEL_AUROC: why, c.METRIC_AUPRO: why})
        return None, None, None
    histogram = PixelHistogram(maps.low, maps.high, bins)
    for image in sorted(images, key=lambda image: image.mask is None):  # masked first: the tightest bound
        if image.label == ANOMALOUS and image.mask is None:
            continue  # which of its pixels are defective is unknown: it takes no part
        mask = None if image.mask is None else _mask(image, load_mask)
        histogram.add(maps.read(image), mask)
    roc = pixel_auroc(histogram)
    if roc is None:
        missing[c.METRIC_PIXEL_AUROC] = "the masks mark no defective pixel, or every pixel"
    pro = aupro(histogram)
    if pro is None:
        missing[c.METRIC_AUPRO] = "the masks mark no defective region, or every pixel"
    return (None, None, pro) if roc is None else (roc.value, roc.max_error, pro)


def _mask(image: TestImage, load_mask: MaskLoader) -> BoolMap:
    assert image.mask is not None
    mask = load_mask(image.mask)
    if mask.shape != image.shape:  # the data set's fault, not the job's
        raise ValueError(f"the mask {image.mask} is {mask.shape[:2]}, its image {image.name} is {image.shape}")
    return mask
