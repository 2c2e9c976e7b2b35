"""The synthetic data set generator: real-shaped layouts (VisA: JPEG images and split_csv; MVTec AD: a folder
per defect type), counts, valid image files, masks, determinism."""

from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from leadersboard.local.datagen import encode_png, generate_dataset

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_png(path: Path) -> tuple[int, int, int, bytes]:
    """(width, height, channels, pixels) of an 8-bit, non-interlaced grayscale or RGB PNG; any filter types.

    Written here with zlib alone so that the check does not trust the generator's own encoder.
    """
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r} of {path}"
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color_type, *methods = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and methods == [0, 0, 0], "8 bits, deflate, standard filters, no interlace"
    channels = {0: 1, 2: 3}[color_type]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * channels
    assert len(raw) == height * (stride + 1)
    pixels = bytearray()
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + predictor) & 0xFF
            else:
                assert kind == 0, f"unknown filter type {kind} in {path}"
        pixels += line
        previous = line
    return width, height, channels, bytes(pixels)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_visa_layout_and_counts(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path, layout="visa", categories=("pcb1", "pcb2"), normal=5, anomalous=3)
    assert root == tmp_path
    for category in ("pcb1", "pcb2"):
        data = tmp_path / category / "Data"
        assert names(data / "Images" / "Normal") == ["000.JPG", "001.JPG", "002.JPG", "003.JPG", "004.JPG"]
        assert names(data / "Images" / "Anomaly") == ["000.JPG", "001.JPG", "002.JPG"]
        assert names(data / "Masks" / "Anomaly") == ["000.png", "001.png", "002.png"]
        for image in (data / "Images").rglob("*.JPG"):
            with Image.open(image) as opened:
                assert (opened.format, opened.mode, opened.size) == ("JPEG", "RGB", (128, 128))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pcb1", "pcb2", "split_csv"]


def test_visa_split_csv_has_visa_s_own_shape_and_keeps_other_categories(tmp_path: Path) -> None:
    generate_dataset(tmp_path, layout="visa", categories=("candle",), normal=4, anomalous=1, size=32)
    generate_dataset(tmp_path, layout="visa", categories=("pcb1",), normal=8, anomalous=2, size=32)
    with (tmp_path / "split_csv" / "1cls.csv").open(newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == ["object", "split", "label", "image", "mask"]
        rows = list(reader)
    assert {row["object"] for row in rows} == {"candle", "pcb1"}
    pcb1 = [row for row in rows if row["object"] == "pcb1"]
    assert [(r["split"], r["label"]) for r in pcb1].count(("test", "normal")) == 2  # a quarter of 8
    assert [(r["split"], r["label"]) for r in pcb1].count(("train", "normal")) == 6
    anomalies = [r for r in pcb1 if r["label"] == "anomaly"]
    assert [r["split"] for r in anomalies] == ["test", "test"]
    for row in pcb1:
        assert (tmp_path / row["image"]).is_file()
        assert (tmp_path / row["mask"]).is_file() if row["label"] == "anomaly" else row["mask"] == ""


def test_mvtec_layout_and_counts(tmp_path: Path) -> None:
    generate_dataset(tmp_path, layout="mvtec", categories=("bottle",), normal=8, anomalous=2, size=48)
    category = tmp_path / "bottle"
    assert names(category / "train" / "good") == [f"{i:03d}.png" for i in range(6)]
    assert names(category / "test" / "good") == ["000.png", "001.png"]
    assert names(category / "test") == ["burn", "good", "residue"]
    assert names(category / "test" / "burn") == ["000.png"] and names(category / "test" / "residue") == ["000.png"]
    assert names(category / "ground_truth") == ["burn", "residue"]
    assert names(category / "ground_truth" / "burn") == ["000_mask.png"]


def test_mvtec_has_several_defect_types_each_with_its_masks(tmp_path: Path) -> None:
    generate_dataset(tmp_path, layout="mvtec", categories=("bottle",), normal=4, anomalous=7, size=32)
    category = tmp_path / "bottle"
    assert names(category / "test") == ["burn", "good", "residue", "scratch"]
    assert [len(names(category / "test" / kind)) for kind in ("burn", "residue", "scratch")] == [3, 2, 2]
    for kind in ("burn", "residue", "scratch"):
        stems = [name.removesuffix(".png") for name in names(category / "test" / kind)]
        assert names(category / "ground_truth" / kind) == [f"{stem}_mask.png" for stem in stems]


def test_images_decode_and_masks_are_nonempty_exactly_for_anomalies(tmp_path: Path) -> None:
    generate_dataset(tmp_path, layout="mvtec", normal=5, anomalous=3, size=64, seed=3)
    data = tmp_path / "pcb1"
    for image in sorted(data.rglob("*.png")):
        if image.parent.parent.name == "ground_truth":
            continue
        width, height, channels, pixels = decode_png(image)
        assert (width, height, channels) == (64, 64, 3)
        assert len(set(pixels)) > 20, f"{image} has no texture"
    normals = [decode_png(p)[3] for p in sorted((data / "train" / "good").iterdir())]
    assert len(set(normals)) == len(normals), "normal images should vary"
    anomalies = sorted((data / "test").glob("[!g]*/*.png"))
    assert len(anomalies) == 3
    for image in anomalies:
        mask_path = data / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
        width, height, channels, mask = decode_png(mask_path)
        assert (width, height, channels) == (64, 64, 1)
        assert set(mask) == {0, 255}, f"{image.name}: masks are binary and non-empty"
        defect = sum(1 for value in mask if value)
        assert 10 <= defect <= 0.5 * len(mask), f"{image.name}: a defect of {defect} pixels"
    # The masked pixels differ visibly from every normal image at those places; the rest does not.
    anomaly = decode_png(data / "test" / "burn" / "000.png")[3]
    mask = decode_png(data / "ground_truth" / "burn" / "000_mask.png")[3]
    inside = [i for i, value in enumerate(mask) if value]
    reference = normals[0]
    changed = sum(
        1 for i in inside if max(abs(anomaly[3 * i + c] - reference[3 * i + c]) for c in range(3)) > 40
    )
    assert changed >= 0.5 * len(inside)


def test_no_masks_for_normal_images_in_mvtec(tmp_path: Path) -> None:
    generate_dataset(tmp_path, layout="mvtec", normal=4, anomalous=1, size=32)
    masks = tmp_path / "pcb1" / "ground_truth"
    assert [p.name for p in masks.iterdir()] == ["burn"]
    assert any(decode_png(masks / "burn" / "000_mask.png")[3])


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    one, two, other = tmp_path / "one", tmp_path / "two", tmp_path / "other"
    for root, seed in ((one, 7), (two, 7), (other, 8)):
        generate_dataset(root, normal=3, anomalous=2, size=40, seed=seed)
    assert tree(one) == tree(two)
    assert tree(one).keys() == tree(other).keys()
    # The split names files only: the same for both seeds; every image and mask differs.
    assert all(tree(one)[name] != tree(other)[name] for name in tree(one) if not name.startswith("split_csv"))


def test_categories_are_independent(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "a", categories=("pcb1",), normal=2, anomalous=1, size=40)
    generate_dataset(tmp_path / "b", categories=("pcb2", "pcb1"), normal=2, anomalous=1, size=40)
    assert tree(tmp_path / "a" / "pcb1") == tree(tmp_path / "b" / "pcb1")
    assert tree(tmp_path / "b" / "pcb1") != tree(tmp_path / "b" / "pcb2")


def test_default_set_is_small(tmp_path: Path) -> None:
    generate_dataset(tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.suffix in (".JPG", ".png")]
    assert len(files) == 40 + 10 + 10
    assert sum(p.stat().st_size for p in files) < 1_000_000


def test_encode_png_round_trip(tmp_path: Path) -> None:
    pixels = bytes(range(256)) * 3  # 16 x 16 RGB
    path = tmp_path / "x.png"
    path.write_bytes(encode_png(16, 16, 3, pixels))
    assert decode_png(path) == (16, 16, 3, pixels)
    with pytest.raises(ValueError, match="bytes of pixels"):
        encode_png(16, 16, 1, pixels)
    with pytest.raises(ValueError, match="channels"):
        encode_png(16, 16, 4, pixels)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"layout": "coco"}, "unknown layout"),
        ({"categories": ()}, "at least one"),
        ({"categories": ("../x",)}, "plain folder name"),
        ({"normal": -1}, "negative"),
        ({"size": 8}, "at least"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        generate_dataset(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_single_string_is_not_a_list_of_categories(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sequence of names"):
        generate_dataset(tmp_path, categories="pcb1")
