"""PaDiM on a verified benchmark: train on the normal images of train/, predict every image of test/,
write predictions.csv and one anomaly map per image. The platform computes the metrics from them,
on labels and masks this code never sees.

The platform runs `python main.py` with three environment variables:

    LEADERSBOARD_TRAIN_DIR     normal training images
    LEADERSBOARD_TEST_DIR      every test image, as <id>.<ext>, without labels or masks
    LEADERSBOARD_PREDICTIONS   where to write predictions.csv (default: ./predictions.csv)

Try it on your machine the same way, with any folder of normal images and one of test images:

    LEADERSBOARD_TRAIN_DIR=data/train LEADERSBOARD_TEST_DIR=data/test python main.py
"""

import csv
import os
from pathlib import Path

import numpy as np
import torch
import yaml
from anomalib.data import Folder
from anomalib.engine import Engine
from anomalib.models import Padim
from anomalib.post_processing import PostProcessor
from lightning import seed_everything
from PIL import Image


def main() -> None:
    config = yaml.safe_load(Path("config.yaml").read_text())
    train_dir, test_dir = folder("LEADERSBOARD_TRAIN_DIR"), folder("LEADERSBOARD_TEST_DIR")
    predictions = Path(os.environ.get("LEADERSBOARD_PREDICTIONS", "predictions.csv"))
    maps_dir = predictions.parent / "maps"  # the platform looks for maps/<image stem>.npy beside the file
    maps_dir.mkdir(parents=True, exist_ok=True)

    # Before the model is built: its randomly initialised backbone must be the same on every run.
    seed_everything(config.get("seed_everything", 42), workers=True)

    # Training images only, all normal: a share of them is held out as the validation set, on which
    # anomalib sets the threshold of the labels. There is no labelled test set here: the platform
    # keeps it.
    data_args = config["data"]["init_args"]
    datamodule = Folder(**data_args, root=train_dir, normal_dir=".", test_split_mode="none",
                        val_split_mode="from_train")

    model_args = config["model"]["init_args"]
    image_size = tuple(config["model"].get("image_size", (256, 256)))
    model = Padim(
        **model_args,
        pre_processor=Padim.configure_pre_processor(image_size),
        # Raw scores: anomalib's default normalisation clips scores and maps to [0, 1] with bounds
        # from the validation images, which would make the most anomalous images (and pixels) tie.
        post_processor=PostProcessor(enable_normalization=False),
        evaluator=False,  # no labels to evaluate against: the platform does that
        visualizer=False,
    )
    engine = Engine(**config["trainer"])
    engine.fit(model=model, datamodule=datamodule)

    # anomalib's adaptive threshold, set on the held-out normal images during fit: with no anomalous
    # image among them it is the highest score one of them got. Its own pred_label assumes normalised
    # scores, so we apply the threshold to the raw scores ourselves.
    threshold = float(model.post_processor.image_threshold)

    with predictions.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image", "score", "label"])
        # One batch per image: test images may differ in size.
        for batch in engine.predict(model=model, data_path=test_dir):
            for path, score, anomaly_map in zip(batch.image_path, batch.pred_score, batch.anomaly_map, strict=True):
                path, score = Path(path), float(score)
                # The row names the file in test/ as it is; the score is higher for more anomalous images.
                writer.writerow([path.name, score, int(score > threshold)])
                # The map comes at the model's size (image_size): scale it back to the image's own.
                with Image.open(path) as image:
                    width, height = image.size
                full_size = torch.nn.functional.interpolate(
                    anomaly_map.reshape(1, 1, *anomaly_map.shape[-2:]).float(), size=(height, width),
                    mode="bilinear", align_corners=False)
                np.save(maps_dir / f"{path.stem}.npy", full_size[0, 0].numpy().astype(np.float32))
    print(f"wrote {predictions} and {maps_dir}/ (label threshold {threshold:.4f})")


def folder(variable: str) -> Path:
    """A folder the platform names in the environment."""
    value = os.environ.get(variable)
    if not value or not Path(value).is_dir():
        raise SystemExit(f"{variable} must name a folder: this example runs on a verified benchmark "
                         f"(see the module's docstring to run it locally)")
    return Path(value)


if __name__ == "__main__":
    main()
