"""anomalib's own evaluation of the verified PaDiM example, for comparison with the platform's scoring.

    PYTHONPATH=tests python -m support.padim_reference EXAMPLE_DIR CATEGORY_DIR

(as a module: run as a script, its folder would shadow the standard library with support/platform.py)

CATEGORY_DIR is the MVTec-layout category the sealed view was made from. This trains the model that
the example trains, from the example's config.yaml with the same seed, the same training images
and the same held-out validation share (so the same backbone, statistics and threshold), then runs
`Engine.test` on the labelled test split (test/good and test/defect, with masks) and prints its
results as one JSON line. Like the example, it keeps anomalib's raw scores
(`PostProcessor(enable_normalization=False)`): anomalib's image_AUROC is then computed on the very
scores the example writes to predictions.csv, with the default evaluator.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from anomalib.data import Folder
from anomalib.engine import Engine
from anomalib.models import Padim
from anomalib.post_processing import PostProcessor
from lightning import seed_everything


def main(example: Path, category: Path) -> None:
    config = yaml.safe_load((example / "config.yaml").read_text())
    seed_everything(config.get("seed_everything", 42), workers=True)
    datamodule = Folder(**config["data"]["init_args"], root=category, normal_dir="train/good",
                        normal_test_dir="test/good", abnormal_dir="test/defect", mask_dir="ground_truth/defect",
                        test_split_mode="from_dir", val_split_mode="from_train")
    image_size = tuple(config["model"].get("image_size", (256, 256)))
    model = Padim(**config["model"]["init_args"], pre_processor=Padim.configure_pre_processor(image_size),
                  post_processor=PostProcessor(enable_normalization=False), visualizer=False)
    engine = Engine(**{**config["trainer"], "default_root_dir": "reference-results"})
    engine.fit(model=model, datamodule=datamodule)
    results = engine.test(model=model, datamodule=datamodule)[0]
    print(json.dumps({name: float(value) for name, value in results.items()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
