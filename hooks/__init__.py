"""The git hooks installed into the bare repository: one thin relay to the service (`relay.sh`),
installed under each hook's name."""

from __future__ import annotations

import shutil
from pathlib import Path

HOOK_NAMES = ("pre-receive", "post-receive")
RELAY = Path(__file__).resolve().parent / "relay.sh"


def install(repo_path: Path) -> None:
    """Copy the relay into `repo_path/hooks` under each hook name (a copy, so upgrades are explicit)."""
    target = repo_path / "hooks"
    target.mkdir(exist_ok=True)
    for name in HOOK_NAMES:
        dest = target / name
        if dest.exists() and dest.read_bytes() == RELAY.read_bytes():
            continue
        shutil.copyfile(RELAY, dest)
        dest.chmod(0o755)
