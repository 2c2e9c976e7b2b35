"""Registering a data set: its layout and categories found (and only real categories), its version a
digest of its content, its split for verified scoring fixed and taken from the data set when it has one."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadersboard.dataset_layouts import LayoutError, detect, split
from leadersboard.datasets import Dataset, DatasetError, content_version, register
from leadersboard.local.datagen import encode_png, generate_dataset

PNG = encode_png(2, 2, 1, bytes(4))


def test_visa_layout_without_its_split_folder_as_a_category(tmp_path: Path) -> None:
    generate_dataset(tmp_path, "visa", ("pcb1", "candle"), normal=5, anomalous=2, size=32)
    (tmp_path / "split_csv").mkdir(exist_ok=True)
    (tmp_path / "split_csv" / "1cls.csv").write_text("object,split,label,image,mask\n")
    (tmp_path / "README.txt").write_text("not a category")
    entry = register("visa", tmp_path)
    assert (entry.layout, entry.categories, entry.scoring) == ("visa", ("candle", "pcb1"), "self_reported")
    assert entry.version.startswith("sha256:") and len(entry.version) == 71


def test_mvtec_and_folder_layouts(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "mvtec", "mvtec", ("bottle",), normal=4, anomalous=1, size=32)
    assert detect(tmp_path / "mvtec") == ("mvtec", ["bottle"])
    (tmp_path / "miic" / "wafer" / "normal").mkdir(parents=True)
    (tmp_path / "miic" / "wafer" / "normal" / "a.png").write_bytes(PNG)
    assert detect(tmp_path / "miic") == ("folder", ["wafer"])
    with pytest.raises(LayoutError, match="in the visa layout"):
        detect(tmp_path / "miic", "visa")


@pytest.mark.parametrize("empty_normal_folder", [False, True], ids=["empty", "no-images"])
def test_a_folder_without_a_category_is_refused(tmp_path: Path, empty_normal_folder: bool) -> None:
    if empty_normal_folder:
        (tmp_path / "pcb1" / "Data" / "Images" / "Normal").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"no category found in .*: a visa data set holds CATEGORY/Data/Images"):
        register("visa", tmp_path)


def test_the_version_follows_the_content(tmp_path: Path) -> None:
    generate_dataset(tmp_path, "visa", ("pcb1",), normal=3, anomalous=1, size=32)
    first = content_version(tmp_path)
    assert content_version(tmp_path) == first
    image = next((tmp_path / "pcb1" / "Data" / "Images" / "Normal").iterdir())
    image.write_bytes(image.read_bytes() + b"\0")
    assert content_version(tmp_path) != first


def test_a_seeded_split_of_the_normals_is_fixed_by_the_seed(tmp_path: Path) -> None:
    generate_dataset(tmp_path, "visa", ("pcb1",), normal=10, anomalous=3, size=32)
    (tmp_path / "split_csv" / "1cls.csv").unlink()  # a VisA-like set without VisA's own split
    one = split(tmp_path, "visa", "pcb1", "v1")
    assert split(tmp_path, "visa", "pcb1", "v1") == one
    assert len(one.train) == 8 and len(one.test) == 5
    assert [t.anomalous for t in one.test].count(True) == 3 and all(t.mask for t in one.test if t.anomalous)
    assert not {str(p) for p in one.train} & {str(t.path) for t in one.test}
    assert all("Anomaly" not in str(p) for p in one.train)
    other = split(tmp_path, "visa", "pcb1", "v2")
    assert {str(p) for p in other.train} != {str(p) for p in one.train}


def test_visa_own_split_is_used_when_present(tmp_path: Path) -> None:
    generate_dataset(tmp_path, "visa", ("pcb1",), normal=3, anomalous=1, size=32)
    (tmp_path / "split_csv").mkdir(exist_ok=True)
    (tmp_path / "split_csv" / "1cls.csv").write_text(
        "object,split,label,image,mask\n"
        "pcb1,train,normal,pcb1/Data/Images/Normal/000.png,\n"
        "pcb1,train,normal,pcb1/Data/Images/Normal/001.png,\n"
        "pcb1,test,normal,pcb1/Data/Images/Normal/002.png,\n"
        "pcb1,test,anomaly,pcb1/Data/Images/Anomaly/000.png,pcb1/Data/Masks/Anomaly/000.png\n"
        "candle,train,normal,candle/Data/Images/Normal/000.png,\n")
    found = split(tmp_path, "visa", "pcb1", "ignored")
    assert [str(p) for p in found.train] == ["pcb1/Data/Images/Normal/000.png", "pcb1/Data/Images/Normal/001.png"]
    assert [(str(t.path), t.anomalous, str(t.mask)) for t in found.test] == [
        ("pcb1/Data/Images/Normal/002.png", False, "None"),
        ("pcb1/Data/Images/Anomaly/000.png", True, "pcb1/Data/Masks/Anomaly/000.png")]
    assert "split_csv/1cls.csv" in found.how


def test_mvtec_split_is_its_own_folders(tmp_path: Path) -> None:
    generate_dataset(tmp_path, "mvtec", ("bottle",), normal=8, anomalous=2, size=32)
    found = split(tmp_path, "mvtec", "bottle", "ignored")
    assert len(found.train) == 6 and len(found.test) == 4
    assert all(t.mask is not None and t.mask.name.endswith("_mask.png") for t in found.test if t.anomalous)


def test_entries_from_the_config() -> None:
    assert Dataset.from_config("visa", "/data/visa") == Dataset("visa", Path("/data/visa"))
    entry = Dataset.from_config("visa", {"path": "/d", "layout": "visa", "scoring": "verified",
                                         "categories": ["pcb1"], "version": "sha256:x"})
    assert entry.verified and entry.has_category("pcb1") and not entry.has_category("pcb9")
    assert Dataset.from_config("visa", entry.to_config()) == entry
    with pytest.raises(DatasetError, match="unknown keys: colour"):
        Dataset.from_config("visa", {"path": "/d", "colour": "red"})


def test_generated_sets_register_in_their_real_layouts(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "visa", "visa", ("pcb1", "candle"), normal=8, anomalous=2, size=32)
    visa = register("visa", tmp_path / "visa")
    assert (visa.layout, visa.categories) == ("visa", ("candle", "pcb1"))  # split_csv/ is not a category
    own = split(tmp_path / "visa", "visa", "pcb1", "ignored")
    assert "split_csv/1cls.csv" in own.how and len(own.train) == 6 and len(own.test) == 4
    assert all(str(p).endswith(".JPG") for p in own.train)
    assert all(t.mask is not None and t.mask.suffix == ".png" for t in own.test if t.anomalous)
    generate_dataset(tmp_path / "mvtec", "mvtec", ("bottle",), normal=8, anomalous=6, size=32)
    mvtec = register("mvtec", tmp_path / "mvtec", "auto")
    assert (mvtec.layout, mvtec.categories) == ("mvtec", ("bottle",))
    found = split(tmp_path / "mvtec", "mvtec", "bottle", "ignored")
    assert {t.path.parent.name for t in found.test if t.anomalous} == {"burn", "residue", "scratch"}
    assert all(t.mask is not None and t.mask.parent.name == t.path.parent.name for t in found.test if t.anomalous)
