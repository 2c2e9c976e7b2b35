"""A real headless Chromium for page tests: finding it, and running it with the flags that keep it
offline and quiet. Missing Chromium fails the test (CI installs the Debian package `chromium`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars")


def chromium_path() -> str:
    """The Chromium binary: $CHROMIUM when set, else the first of NAMES on PATH; fails when there is none."""
    configured = os.environ.get("CHROMIUM")
    found = configured or next((path for name in NAMES if (path := shutil.which(name))), None)
    if not found:
        pytest.fail("Chromium is not installed: 'apt-get install chromium' (or set CHROMIUM to its path).")
    return found


def chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a throw-away profile; raises when it fails."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run([chromium_path(), *FLAGS, f"--user-data-dir={profile}", *args],
                                capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode:
        pytest.fail(f"chromium {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result


def dump_dom(page: Path) -> str:
    """The DOM of `page` after load, as Chromium serialises it (scripts, had any run, would show here)."""
    return chromium("--virtual-time-budget=2000", "--dump-dom", page.resolve().as_uri()).stdout


def screenshot(page: Path, png: Path, size: str = "1280,1600") -> Path:
    chromium(f"--window-size={size}", f"--screenshot={png}", page.resolve().as_uri())
    if not png.exists():
        pytest.fail(f"chromium wrote no screenshot of {page}")
    return png
