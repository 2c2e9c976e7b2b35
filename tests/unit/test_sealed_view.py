"""The sealed view of a verified category: built once per data set version, opaque test names, no
labels or masks in it, and its truth kept beside it."""

from __future__ import annotations

import os
from pathlib import Path

from leadersboard.datasets import register
from leadersboard.local.datagen import generate_dataset
from leadersboard.runner.sealed import FIXED_MTIME, sealed_view


def test_the_view_holds_train_normals_and_opaque_test_images(tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "mvtec", "mvtec", ("bottle",), normal=8, anomalous=3, size=32)
    dataset = register("mvtec", data, scoring="verified")
    view = sealed_view(tmp_path / "sealed", dataset, "bottle")

    train = sorted(p.name for p in view.train.iterdir())
    assert train == sorted(p.name for p in (data / "bottle" / "train" / "good").iterdir())
    test = sorted(view.test.iterdir())
    assert len(test) == 5 and all(p.is_file() and not p.is_symlink() for p in test)
    originals = {p.name for p in (data / "bottle" / "test").rglob("*.png")}
    assert not {p.name for p in test} & originals
    assert all(len(p.stem) == 16 and p.suffix == ".png" for p in test)
    assert {os.stat(p).st_mtime for p in [*test, *view.train.iterdir()]} == {FIXED_MTIME}
    assert {oct(p.stat().st_mode & 0o777) for p in test} == {"0o444"}

    view_files = {p.name for p in view.train.parent.rglob("*")}
    assert not any("mask" in name or "truth" in name or "good" in name or "defect" in name for name in view_files)
    assert view.truth_path.parent not in {view.train, view.test} and oct(view.truth_path.stat().st_mode)[-3:] == "600"
    truth = view.test_set()
    assert [t.name for t in truth] == [p.name for p in test]
    assert sorted(t.label for t in truth) == [0, 0, 1, 1, 1]
    assert all(t.mask is not None and t.mask.is_file() for t in truth if t.label)
    assert {t.shape for t in truth} == {(32, 32)}


def test_a_view_is_built_once_per_version(tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "visa", "visa", ("pcb1",), normal=6, anomalous=2, size=32)
    dataset = register("visa", data, scoring="verified")
    first = sealed_view(tmp_path / "sealed", dataset, "pcb1")
    names = sorted(p.name for p in first.test.iterdir())
    again = sealed_view(tmp_path / "sealed", dataset, "pcb1")
    assert again == first and sorted(p.name for p in again.test.iterdir()) == names

    changed = next((data / "pcb1" / "Data" / "Images" / "Anomaly").iterdir())
    changed.write_bytes(changed.read_bytes())  # same bytes: same version, same view
    assert register("visa", data, scoring="verified").version == dataset.version
    generate_dataset(data, "visa", ("pcb1",), normal=6, anomalous=2, size=32, seed=1)  # new content
    newer = register("visa", data, scoring="verified")
    rebuilt = sealed_view(tmp_path / "sealed", newer, "pcb1")
    assert rebuilt.test != first.test and sorted(p.name for p in rebuilt.test.iterdir()) != names
