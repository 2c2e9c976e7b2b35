"""The git hooks installed into the bare repository (thin relays to the service)."""

from __future__ import annotations

import shutil
from pathlib import Path

HOOK_NAMES = ("pre-receive", "post-receive")
SOURCE = Path(__file__).resolve().parent / "pre-receive"


def install(repo_path: Path) -> None:
    """Copy the relay into `repo_path/hooks` under each hook name (a copy, so upgrades are explicit)."""
    target = repo_path / "hooks"
    target.mkdir(exist_ok=True)
    for name in HOOK_NAMES:
        dest = target / name
        if dest.exists() and dest.read_bytes() == SOURCE.read_bytes():
            continue
        shutil.copyfile(SOURCE, dest)
        dest.chmod(0o755)
