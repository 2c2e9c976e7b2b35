"""The verified metrics, from real predictions files, maps and masks on disk: the fixed points
(perfect 1.0, constant 0.5, inverted 0.0), agreement with scikit-learn on random inputs with ties,
the binned pixel metrics against exact ones, and the degenerate test sets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from leadersboard.runner.pixel_metrics import PixelHistogram, aupro, pixel_auroc
from leadersboard.runner.predictions import Predictions, read_predictions
from leadersboard.runner.scoring import F1_BEST_THRESHOLD, F1_FROM_LABELS, Scores, score
from leadersboard.runner.testset import ANOMALOUS, NORMAL, TestImage, read_mask

from support.verified import make_test_set, true_masks, write_maps, write_mask, write_predictions

LABELS = [NORMAL, ANOMALOUS, NORMAL, NORMAL, ANOMALOUS, NORMAL, ANOMALOUS, NORMAL]


def predict(folder: Path, images: list[TestImage], scores: Sequence[float] | np.ndarray,
            labels: list[int] | np.ndarray | None = None, maps: list[np.ndarray] | None = None) -> Predictions:
    """Writes predictions.csv (and maps/) as a job does, then reads them back as the worker does."""
    folder.mkdir(parents=True)
    if labels is None:
        rows: list[tuple[object, ...]] = [(image.name, repr(float(value)))
                                          for image, value in zip(images, scores, strict=True)]
        write_predictions(folder / "predictions.csv", rows)
    else:
        rows = [(image.name, repr(float(value)), int(label))
                for image, value, label in zip(images, scores, labels, strict=True)]
        write_predictions(folder / "predictions.csv", rows, header=("image", "score", "label"))
    if maps is not None:
        write_maps(folder / "maps", images, maps)
    return read_predictions(folder / "predictions.csv", images)


def scored(tmp_path: Path, images: list[TestImage], scores: Sequence[float] | np.ndarray,
           labels: list[int] | np.ndarray | None = None, maps: list[np.ndarray] | None = None) -> Scores:
    return score(images, predict(tmp_path / "job", images, scores, labels, maps))


@pytest.fixture
def images(tmp_path: Path) -> list[TestImage]:
    return make_test_set(tmp_path / "truth", LABELS)


# ------------------------------------------------------------------------------------- fixed points


def test_a_perfect_predictor_scores_1(tmp_path: Path, images: list[TestImage]) -> None:
    masks = true_masks(images)
    result = scored(tmp_path, images, [float(label) for label in LABELS], LABELS,
                    [mask.astype(np.float32) for mask in masks])
    assert (result.auroc, result.f1_score, result.pixel_auroc, result.aupro) == (1.0, 1.0, 1.0, 1.0)
    assert result.f1_method == F1_FROM_LABELS and result.pixel_auroc_max_error == 0.0
    assert result.missing == {}


def test_a_perfect_ranking_without_labels_finds_the_best_threshold(tmp_path: Path, images: list[TestImage]) -> None:
    result = scored(tmp_path, images, [0.3 + 0.5 * label for label in LABELS])
    assert (result.auroc, result.f1_score, result.f1_method, result.f1_threshold) == (1.0, 1.0, F1_BEST_THRESHOLD,
                                                                                       0.8)


def test_a_constant_predictor_scores_a_half(tmp_path: Path, images: list[TestImage]) -> None:
    result = scored(tmp_path, images, [0.7] * len(LABELS), maps=[np.full(i.shape, 0.7) for i in images])
    assert result.auroc == 0.5 and result.pixel_auroc == 0.5
    # One threshold: everything anomalous. F1 = 2 * precision / (precision + 1), precision = 3/8.
    assert result.f1_score == pytest.approx(2 * 3 / 8 / (3 / 8 + 1), abs=1e-12)
    # The PRO curve is the diagonal: up to FPR 0.3 its area is 0.3^2 / 2, divided by 0.3.
    assert result.aupro == pytest.approx(0.15, abs=1e-12)


def test_an_inverted_predictor_scores_0(tmp_path: Path, images: list[TestImage]) -> None:
    masks = true_masks(images)
    result = scored(tmp_path, images, [1.0 - label for label in LABELS], [1 - label for label in LABELS],
                    [(~mask).astype(np.float64) for mask in masks])
    assert (result.auroc, result.f1_score, result.pixel_auroc, result.aupro) == (0.0, 0.0, 0.0, 0.0)


# ------------------------------------------------------------------------ agreement with scikit-learn


@pytest.mark.parametrize("seed", range(5))
def test_image_metrics_agree_with_scikit_learn_on_random_scores_with_ties(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 300)
    truth[:2] = (0, 1)
    images = [TestImage(f"{i:04x}.png", 8, 8, int(label)) for i, label in enumerate(truth)]
    scores = rng.integers(0, 12, truth.size) / 7 + truth * rng.integers(0, 4, truth.size) / 3  # ties, and signal
    labels = rng.integers(0, 2, truth.size)

    with_labels = scored(tmp_path / "a", images, scores, labels)
    assert with_labels.auroc == pytest.approx(roc_auc_score(truth, scores), abs=1e-9)
    assert with_labels.f1_score == pytest.approx(f1_score(truth, labels), abs=1e-9)

    best = scored(tmp_path / "b", images, scores)
    every_threshold = [f1_score(truth, scores >= t) for t in np.unique(scores)]
    assert best.f1_score == pytest.approx(max(every_threshold), abs=1e-9)
    assert best.f1_threshold is not None
    assert f1_score(truth, scores >= best.f1_threshold) == pytest.approx(best.f1_score, abs=1e-9)


def pixels(images: list[TestImage], maps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's truth and value, for the exact reference (anomalous images without masks excluded)."""
    used = [(mask, values) for image, mask, values in zip(images, true_masks(images), maps, strict=True)
            if not (image.label == ANOMALOUS and image.mask is None)]
    return (np.concatenate([mask.ravel() for mask, _ in used]),
            np.concatenate([values.ravel() for _, values in used]))


@pytest.mark.parametrize("seed", range(3))
def test_pixel_auroc_is_exact_when_values_repeat(tmp_path: Path, seed: int) -> None:
    """Maps of 11 levels (many ties): no bin holds two levels, so the binned AUROC is the exact one."""
    rng = np.random.default_rng(seed)
    images = make_test_set(tmp_path / "truth", LABELS, size=(24, 20), seed=seed)
    maps = [np.minimum(rng.integers(0, 8, image.shape) + 3 * mask, 10) / 10
            for image, mask in zip(images, true_masks(images), strict=True)]
    result = scored(tmp_path, images, [0.0] * len(images), maps=maps)
    truth, values = pixels(images, maps)
    assert result.pixel_auroc == pytest.approx(roc_auc_score(truth, values), abs=1e-9)
    assert result.pixel_auroc_max_error == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_pixel_auroc_of_continuous_values_is_within_its_bound(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    images = make_test_set(tmp_path / "truth", LABELS, size=(40, 48), seed=seed)
    maps = [rng.normal(size=image.shape) + 1.5 * mask for image, mask in zip(images, true_masks(images), strict=True)]
    result = scored(tmp_path, images, [0.0] * len(images), maps=maps)
    truth, values = pixels(images, maps)
    exact = roc_auc_score(truth, values)
    assert result.pixel_auroc is not None and result.pixel_auroc_max_error is not None
    # The bound is tight: a bin holding one normal and one defective pixel in the wrong order costs it all.
    assert abs(result.pixel_auroc - exact) <= result.pixel_auroc_max_error + 1e-12
    assert result.pixel_auroc_max_error <= 1e-5


def test_few_bins_stay_within_their_bound(tmp_path: Path) -> None:
    """The bound holds whatever the bins: with 64 of them it is large, and still true."""
    rng = np.random.default_rng(7)
    images = make_test_set(tmp_path / "truth", LABELS, size=(32, 32))
    maps = [rng.random(image.shape) + 0.3 * mask for image, mask in zip(images, true_masks(images), strict=True)]
    result = score(images, predict(tmp_path / "job", images, [0.0] * len(images), maps=maps), bins=64)
    truth, values = pixels(images, maps)
    assert result.pixel_auroc is not None and result.pixel_auroc_max_error is not None
    assert result.pixel_auroc_max_error > 1e-3
    assert abs(result.pixel_auroc - roc_auc_score(truth, values)) <= result.pixel_auroc_max_error + 1e-12


def test_histogram_chunks_add_up(tmp_path: Path) -> None:
    """Counting in chunks (as 10,000 maps are) gives the counts of one pass."""
    rng = np.random.default_rng(3)
    images = make_test_set(tmp_path / "truth", LABELS, size=(32, 32))
    maps = [rng.random(image.shape) for image in images]
    whole, chunked = PixelHistogram(0.0, 1.0, 4096), PixelHistogram(0.0, 1.0, 4096)
    for values, mask in zip(maps, true_masks(images), strict=True):
        whole.add(values, mask)
        chunked.add(values, mask)
        chunked.flush()
    whole.flush()
    assert (whole.normal == chunked.normal).all() and (whole.defective == chunked.defective).all()
    assert np.allclose(whole.region_share, chunked.region_share)
    assert pixel_auroc(whole) == pixel_auroc(chunked) and aupro(whole) == aupro(chunked)


# -------------------------------------------------------------------------------------- degenerate


def test_a_test_set_of_one_class_has_no_image_metrics(tmp_path: Path) -> None:
    images = make_test_set(tmp_path / "truth", [NORMAL] * 4)
    result = scored(tmp_path, images, [0.1, 0.2, 0.3, 0.4])
    assert result.auroc is None and result.f1_score is None and result.pixel_auroc is None
    assert result.missing == {"auroc": "the test set has only normal images",
                              "f1_score": "the test set has only normal images",
                              "pixel_auroc": "the job wrote no anomaly maps", "aupro": "the job wrote no anomaly maps"}
    assert result.metrics() == {} and result.tags() == {}


def test_masks_that_mark_nothing_have_no_pixel_metrics(tmp_path: Path, images: list[TestImage]) -> None:
    empty = tmp_path / "empty.png"
    write_mask(empty, np.zeros((16, 16), dtype=bool))
    blank = [TestImage(i.name, i.height, i.width, i.label, i.mask and empty) for i in images]
    result = scored(tmp_path, blank, LABELS, maps=[np.zeros(i.shape) for i in images])
    assert result.auroc == 1.0 and result.pixel_auroc is None and result.aupro is None
    assert result.missing == {"pixel_auroc": "the masks mark no defective pixel, or every pixel",
                              "aupro": "the masks mark no defective region, or every pixel"}


def test_no_maps_or_no_masks_have_no_pixel_metrics(tmp_path: Path, images: list[TestImage]) -> None:
    result = scored(tmp_path / "a", images, [float(label) for label in LABELS])
    assert result.missing == {"pixel_auroc": "the job wrote no anomaly maps", "aupro": "the job wrote no anomaly maps"}
    assert result.metrics() == {"auroc": 1.0, "f1_score": 1.0}
    assert result.tags() == {"leadersboard.f1_method": "best_threshold", "leadersboard.f1_threshold": "1.0"}

    unmasked = [TestImage(image.name, image.height, image.width, image.label) for image in images]
    result = scored(tmp_path / "b", unmasked, LABELS, maps=[np.zeros(i.shape) for i in images])
    assert result.missing == {"pixel_auroc": "the data set has no masks", "aupro": "the data set has no masks"}


def test_anomalous_images_without_a_mask_take_no_part_in_pixel_metrics(tmp_path: Path,
                                                                       images: list[TestImage]) -> None:
    masks = true_masks(images)
    maps = [mask.astype(np.float32) for mask in masks]
    maps[1][:] = 1.0  # wrong everywhere, but its mask is unknown
    partly = [TestImage(i.name, i.height, i.width, i.label, None if n == 1 else i.mask) for n, i in enumerate(images)]
    result = scored(tmp_path, partly, LABELS, maps=maps)
    assert result.pixel_auroc == 1.0 and result.aupro == 1.0


def test_masks_are_read_one_at_a_time_and_only_when_needed(tmp_path: Path, images: list[TestImage]) -> None:
    read: list[Path] = []

    def load(path: Path) -> np.ndarray:
        read.append(path)
        return read_mask(path)

    predictions = predict(tmp_path / "job", images, LABELS, maps=[np.zeros(i.shape) for i in images])
    score(images, predictions, load_mask=load)
    assert read == [image.mask for image in images if image.mask is not None]
    score(images, predict(tmp_path / "again", images, LABELS), load_mask=load)  # no maps: no mask is read
    assert len(read) == LABELS.count(ANOMALOUS)


def test_a_mask_of_another_size_is_the_data_set_s_fault(tmp_path: Path, images: list[TestImage]) -> None:
    predictions = predict(tmp_path / "job", images, LABELS, maps=[np.zeros(i.shape) for i in images])
    with pytest.raises(ValueError, match=r"the mask .* is \(8, 8\), its image img1\.png is \(16, 16\)"):
        score(images, predictions, load_mask=lambda path: np.zeros((8, 8), dtype=bool))


def test_predictions_of_another_test_set_are_refused(tmp_path: Path, images: list[TestImage]) -> None:
    predictions = predict(tmp_path / "job", images, LABELS)
    with pytest.raises(ValueError, match="another test set"):
        score(list(reversed(images)), predictions)


@pytest.mark.parametrize("masked_first", [True, False])
def test_the_bound_is_exact_with_masks_first_and_true_in_any_order(tmp_path: Path, masked_first: bool) -> None:
    rng = np.random.default_rng(11)
    images = make_test_set(tmp_path / "truth", LABELS, size=(32, 32))
    masks = true_masks(images)
    # 13 levels in 256 bins: binning is exact; only the bound can tell, in the right order.
    maps = [np.round(rng.random(image.shape) * 0.9 + 0.3 * mask, 1) for image, mask in zip(images, masks, strict=True)]
    order = sorted(range(len(images)), key=lambda i: (images[i].mask is None) == masked_first)
    histograms = {}
    for name, sequence in (("given", order), ("masked first", sorted(order, key=lambda i: images[i].mask is None))):
        histograms[name] = PixelHistogram(0.0, 1.3, 256)
        for i in sequence:
            histograms[name].add(maps[i], masks[i] if images[i].mask is not None else None)
    truth, values = pixels(images, maps)
    exact = roc_auc_score(truth, values)
    given, best = pixel_auroc(histograms["given"]), pixel_auroc(histograms["masked first"])
    assert given is not None and best is not None and given.value == best.value
    assert given.value == pytest.approx(exact, abs=1e-12) and best.max_error == 0.0
    assert (given.max_error == 0.0) == masked_first
