"""The verified AUPRO against anomalib's own `AUPRO` (FPR limit 0.3), on real maps and masks on
disk. anomalib keeps every pixel and sorts them in float32; the verified one counts them in bins:
on small inputs the two agree to float32's precision.

In the end-to-end tier, with the other tests that load anomalib: importing it (torch, lightning,
torchmetrics) takes ~11 s of CPU, more than the rest of the unit tier together."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from leadersboard.runner.predictions import read_predictions
from leadersboard.runner.scoring import score
from leadersboard.runner.testset import ANOMALOUS, NORMAL

from support.verified import make_test_set, true_masks, write_maps, write_predictions

pytestmark = pytest.mark.anomalib

LABELS = [NORMAL, ANOMALOUS, ANOMALOUS, NORMAL, ANOMALOUS, NORMAL, NORMAL, ANOMALOUS, NORMAL, ANOMALOUS]


def anomalib_aupro(maps: list[np.ndarray], masks: list[np.ndarray]) -> float:
    import torch
    from anomalib.metrics import AUPRO

    metric = AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0.3)
    metric.update(cast(Any, SimpleNamespace(anomaly_map=torch.from_numpy(np.stack(maps)),
                                  gt_mask=torch.from_numpy(np.stack(masks)))))  # the fields it reads
    return float(metric.compute())


@pytest.mark.parametrize(("seed", "signal"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 0.0)])
def test_aupro_agrees_with_anomalib(tmp_path: Path, seed: int, signal: float) -> None:
    rng = np.random.default_rng(seed)
    images = make_test_set(tmp_path / "truth", LABELS, size=(32, 40), seed=seed)
    masks = true_masks(images)
    maps = [(rng.random(image.shape) + signal * mask * rng.random(image.shape)).astype(np.float32)
            for image, mask in zip(images, masks, strict=True)]
    write_predictions(tmp_path / "predictions.csv", [(image.name, 0.5) for image in images])
    write_maps(tmp_path / "maps", images, maps)
    result = score(images, read_predictions(tmp_path / "predictions.csv", images))
    assert result.aupro == pytest.approx(anomalib_aupro(maps, masks), abs=1e-5)


def test_aupro_of_tied_values_agrees_with_anomalib(tmp_path: Path) -> None:
    """Maps of few levels: long runs of equal values, which both take as one threshold."""
    rng = np.random.default_rng(5)
    images = make_test_set(tmp_path / "truth", LABELS, size=(24, 24), seed=5)
    masks = true_masks(images)
    maps = [(np.minimum(rng.integers(0, 6, image.shape) + 2 * mask, 7) / 7).astype(np.float32)
            for image, mask in zip(images, masks, strict=True)]
    write_predictions(tmp_path / "predictions.csv", [(image.name, 0.5) for image in images])
    write_maps(tmp_path / "maps", images, maps)
    result = score(images, read_predictions(tmp_path / "predictions.csv", images))
    assert result.aupro == pytest.approx(anomalib_aupro(maps, masks), abs=1e-6)
