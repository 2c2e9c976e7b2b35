"""Submission folders that each break one rule, with the fragments their message must hold."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .instances import GOOD_CONFIG, submission_files

SMALL_FILE_LIMIT = 1024 * 1024
# The instance the rule tests push to and validate against: two data sets, a 1 MiB limit per file.
RULES_INSTANCE: dict[str, Any] = {"limits": {"max_file_bytes": SMALL_FILE_LIMIT}, "datasets": ("visa", "miic")}


@dataclass(frozen=True)
class BadFolder:
    """A submission folder that breaks one rule, and the fragments its message must hold (one line)."""

    folder: str
    files: dict[str, str | bytes]
    expect: tuple[str, ...]
    symlink: str | None = None  # add this path as a symbolic link to main.py
    submodule: str | None = None  # add this path as a submodule (gitlink / nested repository)


# A list item where a mapping key belongs: the YAML error is on line 7.
INVALID_YAML = """model:
  class_path: anomalib.models.Padim
trainer: {}
data:
  name: visa
  init_args: {name: pcb1}
  - oops
"""

BAD_FOLDERS: dict[str, BadFolder] = {
    "invalid-yaml": BadFolder("broken", submission_files(config=INVALID_YAML), (
        "[config] broken/config.yaml line 7:", "not valid YAML",
        "Fix: correct the YAML syntax")),
    "yaml-list": BadFolder("broken", submission_files(config="- model\n- data\n- trainer\n"), (
        "[config] broken/config.yaml:", "must be a YAML mapping, not a list",
        "Fix: write top-level keys 'model:', 'data:' and 'trainer:'")),
    "missing-config": BadFolder("broken", submission_files(config=None), (
        "[config] broken/config.yaml:", "the config file is missing",
        "Fix: add config.yaml with 'model', 'data' and 'trainer' sections")),
    "missing-main": BadFolder("broken", submission_files(main=None), (
        "[entrypoint] broken/main.py:", "the entrypoint is missing",
        "Fix: add main.py defining main() or train()")),
    "syntax-error": BadFolder("broken", submission_files(main="import os\n\ndef main(:\n    pass\n"), (
        "[entrypoint] broken/main.py line 3:", "Python syntax error",
        "Fix: correct the syntax; 'python -m py_compile FILE' shows it locally")),
    "no-main-or-train": BadFolder("broken", submission_files(main="def helper():\n    return 1\n"), (
        "[entrypoint] broken/main.py:", "defines no top-level main() or train() function",
        "Fix: add 'def main():' at the top level")),
    "unknown-dataset": BadFolder("broken", submission_files(config=GOOD_CONFIG.replace("name: visa", "name: mvtec")), (
        "[config] broken/config.yaml:", "unknown data set 'mvtec' in data.name",
        "Fix: use one of: miic, visa")),
    "symlink": BadFolder("broken", submission_files(), (
        "[symlink] broken/link.py:", "symbolic links are not allowed",
        "Fix: replace the link with the file itself"), symlink="link.py"),
    "submodule": BadFolder("broken", submission_files(), (
        "[submodule] broken/vendor:", "submodules are not allowed",
        "Fix: copy the code into the folder"), submodule="vendor"),
    "oversized-file": BadFolder("broken", submission_files(**{"weights.bin": os.urandom(SMALL_FILE_LIMIT + 1024)}), (
        "[file-size] broken/weights.bin:", "over the 1.0 MB limit per file",
        "Fix: leave large files (weights, data) out of the submission")),
    "bad-folder-name": BadFolder("my@model", submission_files(), (
        "[folder-name] my@model/:", "the folder name 'my@model' is not allowed",
        "Fix: use 1-64 characters from A-Z a-z 0-9 . _ -")),
}


def find_message(lines: list[str], fragments: tuple[str, ...]) -> str:
    """The one line that holds every fragment (an assertion error shows all lines when none does)."""
    for line in lines:
        if all(fragment in line for fragment in fragments):
            return line
    raise AssertionError("no line holds all of " + repr(fragments) + ":\n" + "\n".join(lines))
