"""Reading a verified job's predictions: what is accepted, and each way a hostile or careless
predictions.csv or maps/ folder fails, with its own reason (the exact sentence the participant reads)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from leadersboard.runner.predictions import Predictions, PredictionsError, max_table_bytes, read_predictions
from leadersboard.runner.testset import ANOMALOUS, NORMAL, TestImage

from support.verified import write_maps, write_predictions

IMAGES = [TestImage("a1.png", 4, 6, NORMAL), TestImage("b2.png", 4, 6, ANOMALOUS),
          TestImage("c3.jpg", 4, 6, NORMAL)]
ROWS = [("a1.png", 0.1), ("b2.png", 0.9), ("c3.jpg", 0.2)]


def read(folder: Path) -> Predictions:
    return read_predictions(folder / "predictions.csv", IMAGES)


def fails(folder: Path) -> str:
    with pytest.raises(PredictionsError) as caught:
        read(folder)
    return str(caught.value)


def maps(dtype: type = np.float32) -> list[np.ndarray]:
    return [np.full((4, 6), value, dtype=dtype) for value in (0.5, 2.0, -1.0)]


# ------------------------------------------------------------------------------------------ accepted


def test_scores_come_in_the_test_set_s_order_whatever_the_file_s(tmp_path: Path) -> None:
    write_predictions(tmp_path / "predictions.csv", reversed(ROWS))
    predictions = read(tmp_path)
    assert predictions.names == ("a1.png", "b2.png", "c3.jpg")
    assert predictions.scores.tolist() == [0.1, 0.9, 0.2]
    assert predictions.labels is None and predictions.maps is None


def test_a_label_column_in_any_column_order_crlf_a_byte_order_mark_and_blank_lines(tmp_path: Path) -> None:
    text = "\ufefflabel,image,score\r\n0,a1.png,-3\r\n\r\n1,b2.png,1e3\r\n0,c3.jpg, 7.25 \r\n\r\n"
    (tmp_path / "predictions.csv").write_text(text, encoding="utf-8", newline="")
    predictions = read(tmp_path)
    assert predictions.scores.tolist() == [-3.0, 1000.0, 7.25]
    assert predictions.labels is not None and predictions.labels.tolist() == [0, 1, 0]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_maps_of_any_float_type_and_their_range(tmp_path: Path, dtype: type) -> None:
    write_predictions(tmp_path / "predictions.csv", ROWS)
    write_maps(tmp_path / "maps", IMAGES, maps(dtype))
    predictions = read(tmp_path)
    assert predictions.maps is not None
    assert (predictions.maps.low, predictions.maps.high) == (-1.0, 2.0)
    assert predictions.maps.read(IMAGES[1]).tolist() == maps()[1].tolist()


def test_an_empty_maps_folder_is_no_maps(tmp_path: Path) -> None:
    write_predictions(tmp_path / "predictions.csv", ROWS)
    (tmp_path / "maps").mkdir()
    assert read(tmp_path).maps is None


# ----------------------------------------------------------------- the issue's cases, each its own reason


def no_file(folder: Path) -> None:
    pass


def missing_image(folder: Path) -> None:
    write_predictions(folder / "predictions.csv", ROWS[:2])


def duplicate(folder: Path) -> None:
    write_predictions(folder / "predictions.csv", [*ROWS, ("b2.png", 0.5)])


def extra_row(folder: Path) -> None:
    write_predictions(folder / "predictions.csv", [*ROWS, ("d4.png", 0.5)])


def nan(folder: Path) -> None:
    write_predictions(folder / "predictions.csv", [ROWS[0], ("b2.png", "nan"), ROWS[2]])


def label_2(folder: Path) -> None:
    write_predictions(folder / "predictions.csv", [(*row, 2 if i == 2 else 0) for i, row in enumerate(ROWS)],
                      header=("image", "score", "label"))


def wrong_header(folder: Path) -> None:
    write_predictions(folder / "predictions.csv", ROWS, header=("filename", "score"))


def map_of_wrong_shape(folder: Path) -> None:
    write_predictions(folder / "predictions.csv", ROWS)
    write_maps(folder / "maps", IMAGES, [*maps()[:2], np.zeros((2, 3), dtype=np.float32)])


ISSUE_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "no file": (no_file, "predictions.csv was not written; the job's code must write its predictions to the path "
                         "in LEADERSBOARD_PREDICTIONS"),
    "missing image": (missing_image, "predictions.csv: 1 test image has no row, e.g. c3.jpg; write one row per "
                                     "file in test/"),
    "duplicate": (duplicate, "predictions.csv line 5: image 'b2.png' already has a row (line 3); write each test "
                             "image once"),
    "extra row": (extra_row, "predictions.csv line 5: image 'd4.png' is not a file in test/; write the test images' "
                             "file names as they are"),
    "NaN": (nan, "predictions.csv line 3: score 'nan' is not a finite number; write a finite number"),
    "label 2": (label_2, "predictions.csv line 4: label '2' is not 0 or 1; write 1 for anomalous, 0 for normal"),
    "wrong header": (wrong_header, "predictions.csv line 1: the header is 'filename,score'; it must be image,score "
                                   "or image,score,label"),
    "map of wrong shape": (map_of_wrong_shape, "maps/c3.npy: shape (2, 3), the image is 4 x 6; save a 2-D array "
                                               "of the image's height x width"),
}


@pytest.mark.parametrize("case", ISSUE_CASES)
def test_each_malformed_predictions_file_fails_with_its_own_reason(tmp_path: Path, case: str) -> None:
    make, reason = ISSUE_CASES[case]
    make(tmp_path)
    assert fails(tmp_path) == reason


def test_the_reasons_differ() -> None:
    reasons = [reason for _, reason in ISSUE_CASES.values()]
    assert len(set(reasons)) == len(reasons)


# --------------------------------------------------------------------------------- more ways to fail


def write_text(folder: Path, text: str) -> None:
    (folder / "predictions.csv").write_text(text, encoding="utf-8", newline="")


@pytest.mark.parametrize(("text", "reason"), [
    ("", "predictions.csv is empty; write the header image,score (or image,score,label) and one row per test image"),
    ("image,score,score\na1.png,1,1\n", "predictions.csv line 1: the header is 'image,score,score'; it must be "
                                        "image,score or image,score,label"),
    ("image,score\na1.png,1,0\n", "predictions.csv line 2: 3 values, the header has 2; write one value per column"),
    ("image,score\na1.png,high\n", "predictions.csv line 2: score 'high' is not a number; write a decimal number, "
                                   "higher for more anomalous"),
    ("image,score\na1.png,-inf\n", "predictions.csv line 2: score '-inf' is not a finite number; write a finite "
                                   "number"),
    ("image,score,label\na1.png,1,True\n", "predictions.csv line 2: label 'True' is not 0 or 1; write 1 for "
                                           "anomalous, 0 for normal"),
    ('image,score\n"a1.png"x,1\n', "predictions.csv line 2: ',' expected after '\"'; write plain comma-separated "
                                   "values"),
    ("image,score\na1.png,0.1\nb2.png,0.2\nc3.jpg,0.3\nc3.jpg,0.4\n",
     "predictions.csv line 5: image 'c3.jpg' already has a row (line 4); write each test image once"),
    ("image,score\nb2.png,1\n", "predictions.csv: 2 test images have no row, e.g. a1.png; write one row per file in "
                                "test/"),
    ("image,score\n" + "x" * 50 + ",1\n", "predictions.csv line 2: image 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' "
                                          "is not a file in test/; write the test images' file names as they are"),
])
def test_malformed_tables(tmp_path: Path, text: str, reason: str) -> None:
    write_text(tmp_path, text)
    assert fails(tmp_path) == reason


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "predictions.csv").write_bytes(b"image,score\na1.png,1\n\xff\xfe,2\n")
    assert fails(tmp_path) == "predictions.csv line 3: not UTF-8 text; save the file as UTF-8"


def test_a_file_larger_than_the_test_set_needs_is_refused_unread(tmp_path: Path) -> None:
    limit = max_table_bytes(IMAGES)
    text = "image,score\n" + "a1.png,0.1\n" * (limit // 10)
    write_text(tmp_path, text)
    assert fails(tmp_path) == (f"predictions.csv is {len(text):,} bytes, more than the {limit:,} bytes allowed for 3 "
                               f"test images (one short row each)")


def test_a_symbolic_link_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    write_predictions(secret, ROWS)
    work = tmp_path / "work"
    work.mkdir()
    (work / "predictions.csv").symlink_to(secret)
    assert fails(work) == "predictions.csv is a symbolic link; write a regular file"


def test_a_hard_link_is_refused(tmp_path: Path) -> None:
    secret = write_predictions(tmp_path / "secret.csv", ROWS)
    work = tmp_path / "work"
    work.mkdir()
    os.link(secret, work / "predictions.csv")
    assert fails(work) == "predictions.csv is a hard link to another file; write a file of its own"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", ["folder", "pipe"])
def test_a_folder_or_a_named_pipe_is_refused_without_waiting(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "predictions.csv"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    assert fails(tmp_path) == ("predictions.csv is not a regular file (a folder, a pipe or a device); write a "
                               "regular file")


# ---------------------------------------------------------------------------------------------- maps


def with_maps(folder: Path, arrays: list[np.ndarray] | None = None) -> Path:
    write_predictions(folder / "predictions.csv", ROWS)
    write_maps(folder / "maps", IMAGES, arrays or maps())
    return folder / "maps"


def test_some_maps_missing(tmp_path: Path) -> None:
    (with_maps(tmp_path) / "a1.npy").unlink()
    assert fails(tmp_path) == "maps/: 1 test image has no map, e.g. a1.npy; write one map per test image, or none"


@pytest.mark.parametrize("name", ["notes.txt", "a1.png.npy", "zz.npy", "sub"])
def test_anything_else_in_the_maps_folder(tmp_path: Path, name: str) -> None:
    folder = with_maps(tmp_path)
    (folder / name).mkdir() if name == "sub" else (folder / name).write_bytes(b"x")
    assert fails(tmp_path) == (f"maps/{name} is not the map of a test image; maps/ may hold only <image stem>.npy "
                               f"files, one per file in test/")


def test_a_map_with_non_finite_values(tmp_path: Path) -> None:
    arrays = maps()
    arrays[0][1, 2], arrays[0][3, 3] = np.nan, np.inf
    with_maps(tmp_path, arrays)
    assert fails(tmp_path) == "maps/a1.npy: 2 values are not a finite number (NaN or infinity); write finite numbers"


@pytest.mark.parametrize(("array", "reason"), [
    (np.zeros((4, 6), dtype=np.int64), "maps/b2.npy: values of type int64; save a float array (float32 or float64)"),
    (np.zeros((4, 6), dtype=np.complex64), "maps/b2.npy: values of type complex64; save a float array (float32 or "
                                           "float64)"),
    (np.zeros((1, 4, 6), dtype=np.float32), "maps/b2.npy: shape (1, 4, 6), the image is 4 x 6; save a 2-D array of "
                                            "the image's height x width"),
    (np.zeros((6, 4), dtype=np.float32), "maps/b2.npy: shape (6, 4), the image is 4 x 6; save a 2-D array of the "
                                         "image's height x width"),
    (np.array([None] * 24, dtype=object).reshape(4, 6), "maps/b2.npy: values of type object; save a float array "
                                                        "(float32 or float64)"),
])
def test_a_map_of_the_wrong_kind(tmp_path: Path, array: np.ndarray, reason: str) -> None:
    arrays: list[np.ndarray] = maps()
    arrays[1] = array
    folder = with_maps(tmp_path)
    np.save(folder / "b2.npy", array, allow_pickle=True)
    assert fails(tmp_path) == reason


def test_a_map_that_is_not_npy_or_cut_short(tmp_path: Path) -> None:
    folder = with_maps(tmp_path)
    (folder / "b2.npy").write_bytes(b"P6 not numpy")
    assert fails(tmp_path) == "maps/b2.npy is not a .npy file of a plain array; write it with numpy.save"
    data = (folder / "a1.npy").read_bytes()
    (folder / "b2.npy").write_bytes(data[:-10])
    assert fails(tmp_path) == "maps/b2.npy is cut short or unreadable; write it with numpy.save"


def test_a_map_whose_header_lies_is_not_allocated(tmp_path: Path) -> None:
    folder = with_maps(tmp_path)
    with (folder / "a1.npy").open("wb") as file:  # a valid header that promises 96 TB, then a few bytes
        np.lib.format.write_array_header_1_0(file, {"descr": "<f4", "fortran_order": False,
                                                    "shape": (4000000, 6000000)})
        file.write(b"\0" * 96)
    assert fails(tmp_path).startswith("maps/a1.npy: shape (4000000, 6000000), the image is 4 x 6")


def test_a_map_larger_than_its_image_allows(tmp_path: Path) -> None:
    folder = with_maps(tmp_path)
    np.save(folder / "c3.npy", np.zeros((400, 600)))
    assert fails(tmp_path) == ("maps/c3.npy is 1,920,128 bytes, more than the 4,288 bytes allowed for a 4 x 6 image "
                               "(float64 at most)")


def test_links_in_place_of_maps_are_not_followed(tmp_path: Path) -> None:
    folder = with_maps(tmp_path)
    (folder / "a1.npy").unlink()
    (folder / "a1.npy").symlink_to(folder / "b2.npy")
    assert fails(tmp_path) == "maps/a1.npy is a symbolic link; write a regular file"
    real = tmp_path / "elsewhere"
    folder.rename(real)
    folder.symlink_to(real, target_is_directory=True)
    assert fails(tmp_path) == "maps/ is a symbolic link; make it a plain folder"


def test_a_file_in_place_of_the_maps_folder(tmp_path: Path) -> None:
    write_predictions(tmp_path / "predictions.csv", ROWS)
    (tmp_path / "maps").write_bytes(b"")
    assert fails(tmp_path) == "maps/ is not a folder; make it a plain folder"


def test_a_map_changed_after_the_check_fails_when_scored(tmp_path: Path) -> None:
    folder = with_maps(tmp_path)
    predictions = read(tmp_path)
    np.save(folder / "b2.npy", np.full((4, 6), np.nan))
    assert predictions.maps is not None
    with pytest.raises(PredictionsError, match=r"maps/b2\.npy: 24 values are not a finite number"):
        predictions.maps.read(IMAGES[1])


def test_a_test_set_must_name_its_images_once(tmp_path: Path) -> None:
    write_predictions(tmp_path / "predictions.csv", ROWS)
    with pytest.raises(ValueError, match="share a name"):
        read_predictions(tmp_path / "predictions.csv", [*IMAGES, IMAGES[0]])
    with pytest.raises(ValueError, match="share a stem"):
        read_predictions(tmp_path / "predictions.csv", [*IMAGES, TestImage("a1.jpg", 4, 6, NORMAL)])
