"""YAML from participants: aliases, size, depth and value count bounded while reading
(how fast a hostile document is refused: benchmarks/hostile_input.py)."""

from __future__ import annotations

import pytest

from leadersboard import safe_yaml
from leadersboard.safe_yaml import UnsafeYaml

BOMB = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{k}: &{k} [{', '.join(['*' + p] * 9)}]" for p, k in zip("abcdefgh", "bcdefghi", strict=True)),
])


@pytest.mark.parametrize(("text", "problem", "line"), [
    (BOMB, "aliases (*a) are not allowed: write the value out", 1),
    ("x: " + "[" * 5000 + "]" * 5000, "nested more than 64 levels deep", 0),
    ("x: " + "{a: " * 5000 + "}" * 5000, "nested more than 64 levels deep", 0),
    ("x: [" + ",".join(["1"] * 50_000) + "]", "more than 10,000 values", 0),
    ("x: '" + "y" * (300 * 1024) + "'", "larger than 256 KiB", None),
])
def test_hostile_documents_are_refused(text: str, problem: str, line: int | None) -> None:
    with pytest.raises(UnsafeYaml) as refused:
        safe_yaml.load(text)
    assert refused.value.problem == problem
    assert (refused.value.problem_mark.line if refused.value.problem_mark else None) == line  # type: ignore[attr-defined]


def test_ordinary_documents_load() -> None:
    assert safe_yaml.load("model: {class_path: Padim, init_args: &args {backbone: resnet18}}\nseed: 7\n") == {
        "model": {"class_path": "Padim", "init_args": {"backbone": "resnet18"}}, "seed": 7}
    assert safe_yaml.load("") is None
