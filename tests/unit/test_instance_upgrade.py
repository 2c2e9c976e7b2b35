"""An instance made by an older version is brought up to this one when `serve` starts (`upgrade`):
the repository's settings (receive.fsckObjects keeps malformed trees out) and its hooks."""

from __future__ import annotations

import subprocess
from pathlib import Path

from leadersboard.cli.instance import REPO_CONFIG, init, upgrade
from leadersboard.settings import Settings


def repo_setting(settings: Settings, key: str) -> str:
    return subprocess.run(["git", "config", "--file", str(settings.repo_path / "config"), "--get", key],
                          capture_output=True, text=True, check=False).stdout.strip()


def test_an_older_instance_gains_the_repository_settings_and_hooks(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path / "home", environ={})
    init(settings)
    subprocess.run(["git", "config", "--file", str(settings.repo_path / "config"), "--unset", "receive.fsckObjects"],
                   check=True)
    (settings.repo_path / "hooks" / "pre-receive").unlink()
    assert repo_setting(settings, "receive.fsckObjects") == ""

    upgrade(settings)
    assert all(repo_setting(settings, key) == value for key, value in REPO_CONFIG.items())
    assert (settings.repo_path / "hooks" / "pre-receive").is_file()
    upgrade(settings)  # idempotent
    assert repo_setting(settings, "receive.fsckObjects") == "true"
