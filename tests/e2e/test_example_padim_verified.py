"""The verified example runs for real, as a job would: anomalib's PaDiM trains on a sealed view's
train/, predicts its opaque test/, writes predictions.csv and maps; the platform's scoring then
agrees with anomalib's own `Engine.test` on the same split.

The reference (`support/padim_reference.py`) trains the same model (the example's config.yaml, the
same seed, training images and validation share) and runs `Engine.test` on the labelled split with
anomalib's default evaluator; both keep anomalib's raw scores, so anomalib's image_AUROC is computed
on the very scores in predictions.csv. To make the comparison mean something, the test set gets
defects no model can see (normal images filed as defects, with empty masks): the AUROC is below 1.

Needs anomalib (the `anomalib` extra).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leadersboard.examples import PADIM_VERIFIED
from leadersboard.local.datagen import generate_dataset
from leadersboard.runner.predictions import read_predictions
from leadersboard.runner.scoring import F1_FROM_LABELS, score

from support.verified import seal_category, write_mask

ROOT = Path(__file__).resolve().parents[2]
SIZE = 160  # not the model's 128 px: the example must scale its maps back to the image's size
INVISIBLE = 4

pytestmark = [pytest.mark.anomalib, pytest.mark.slow]


def one_defect_folder(category: Path) -> None:
    """Every generated defect type's images and masks in test/defect and ground_truth/defect: the reference
    evaluation (support/padim_reference.py) reads that one folder, as anomalib's Folder pairs masks by it."""
    (category / "test" / "defect").mkdir()
    (category / "ground_truth" / "defect").mkdir()
    for kind in sorted(p.name for p in (category / "test").iterdir() if p.name not in ("good", "defect")):
        for image in sorted((category / "test" / kind).iterdir()):
            image.rename(category / "test" / "defect" / f"{kind}_{image.name}")
            (category / "ground_truth" / kind / f"{image.stem}_mask.png").rename(
                category / "ground_truth" / "defect" / f"{kind}_{image.stem}_mask.png")
        (category / "test" / kind).rmdir()
        (category / "ground_truth" / kind).rmdir()


def add_invisible_defects(category: Path, count: int) -> None:
    """Move `count` normal training images into test/defect, with empty masks."""
    for index, image in enumerate(sorted((category / "train" / "good").iterdir())[:count]):
        image.rename(category / "test" / "defect" / f"invisible_{index:03d}.png")
        write_mask(category / "ground_truth" / "defect" / f"invisible_{index:03d}_mask.png",
                   np.zeros((SIZE, SIZE), dtype=bool))


def job_environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "LEADERSBOARD_"))}
    env.update(HF_HUB_OFFLINE="1", MLFLOW_DISABLE_TELEMETRY="true", **extra)
    return env


@pytest.mark.timeout(900)
def test_verified_example_scores_as_anomalib_evaluates(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "mvtec", layout="mvtec", categories=("bottle",), normal=44, anomalous=10, size=SIZE)
    category = tmp_path / "mvtec" / "bottle"
    one_defect_folder(category)
    add_invisible_defects(category, INVISIBLE)
    view = seal_category(category, tmp_path / "view" / "bottle")
    assert not list(view.test.glob("*/")) and all(len(path.stem) == 12 for path in view.test.iterdir())

    work = tmp_path / "work"
    shutil.copytree(PADIM_VERIFIED, work, ignore=shutil.ignore_patterns("__pycache__", "results"))
    env = job_environment(LEADERSBOARD_TRAIN_DIR=str(view.train), LEADERSBOARD_TEST_DIR=str(view.test),
                          LEADERSBOARD_PREDICTIONS=str(work / "predictions.csv"))
    job = subprocess.run([sys.executable, "main.py"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=400, check=False)
    assert job.returncode == 0, (job.stdout + job.stderr)[-6000:]

    predictions = read_predictions(work / "predictions.csv", view.truth)
    assert predictions.labels is not None and predictions.maps is not None
    assert np.load(work / "maps" / f"{view.truth[0].stem}.npy").shape == (SIZE, SIZE)
    verified = score(view.truth, predictions)

    reference_run = subprocess.run([sys.executable, "-m", "support.padim_reference", str(PADIM_VERIFIED),
                                    str(category)], cwd=tmp_path, env={**job_environment(),
                                                                       "PYTHONPATH": str(ROOT / "tests")},
                                   capture_output=True, text=True, timeout=400, check=False)
    assert reference_run.returncode == 0, (reference_run.stdout + reference_run.stderr)[-6000:]
    reference = json.loads(reference_run.stdout.strip().splitlines()[-1])

    assert verified.auroc is not None and 0.5 < reference["image_AUROC"] < 0.999, reference
    assert verified.auroc == pytest.approx(reference["image_AUROC"], abs=1e-4)
    assert verified.f1_method == F1_FROM_LABELS and verified.f1_score is not None
    # Pixel metrics: the same maps, here at the image's size and there at the model's; close, not equal.
    assert verified.pixel_auroc is not None and verified.aupro is not None
    assert verified.pixel_auroc == pytest.approx(reference["pixel_AUROC"], abs=0.02)
    assert verified.missing == {}
