"""A job of a verified benchmark: what it sees of the data set, and how the platform scores it.

The job sees the sealed view of its category only (`sealed.py`): the training images and the test
images under opaque names, read-only, named by `LEADERSBOARD_TRAIN_DIR` and `LEADERSBOARD_TEST_DIR`.
It writes its predictions where `LEADERSBOARD_PREDICTIONS` says (maps in `maps/` beside them).
After its code exits 0, the worker checks them against the test set and computes the official
metrics (`scoring.py`); nothing finer than those aggregates leaves the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from leadersboard.datasets import Dataset

from .predictions import read_predictions
from .sealed import SealedView, sealed_view

if TYPE_CHECKING:
    from .scoring import Scores

TRAIN_MOUNT = "sealed-train"  # in the job's working folder, as the data set's categories are otherwise
TEST_MOUNT = "sealed-test"
PREDICTIONS_FILE = "predictions.csv"


@dataclass(frozen=True)
class VerifiedRun:
    view: SealedView

    def mounts(self) -> dict[str, Path]:
        """Name in the job's working folder -> read-only folder on this host."""
        return {TRAIN_MOUNT: self.view.train, TEST_MOUNT: self.view.test}

    def environment(self, workdir: PurePosixPath) -> dict[str, str]:
        """The variables that tell the job where things are, as the job sees its working folder."""
        return {"LEADERSBOARD_TRAIN_DIR": str(workdir / TRAIN_MOUNT),
                "LEADERSBOARD_TEST_DIR": str(workdir / TEST_MOUNT),
                "LEADERSBOARD_PREDICTIONS": str(workdir / PREDICTIONS_FILE)}

    def evaluate(self, work: Path) -> Scores:
        """The official scores of what the job wrote in `work` (its working folder on this host);
        `PredictionsError` names the first problem of the job's files."""
        # Imported here: scikit-learn and scipy cost every worker ~1 s of CPU at start, for verified jobs only.
        from .scoring import score

        images = self.view.test_set()
        return score(images, read_predictions(work / PREDICTIONS_FILE, images))


def prepare(sealed_root: Path, dataset: Dataset, category: str) -> VerifiedRun:
    """The run of a job on `dataset`/`category`: its sealed view, built first when it has none yet."""
    return VerifiedRun(sealed_view(sealed_root, dataset, category))
