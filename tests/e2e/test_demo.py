"""`leadersboard demo`, the README's first command: the whole product once, for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.anomalib
@pytest.mark.slow
@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_demo_runs_the_example_to_a_built_leaderboard(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADERSBOARD_", "MLFLOW_"))}
    env["TMPDIR"] = str(tmp_path)  # the throw-away instance lands here
    result = subprocess.run([str(Path(sys.executable).parent / "leadersboard"), "demo"], env=env,
                            capture_output=True, text=True, timeout=900, check=False)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "remote: LeadersBoard: padim: job " in out
    assert "⏳ running" in out and "✅ completed" in out
    completed = next(line for line in out.splitlines() if line.startswith("6/6 completed: "))
    auroc = float(completed.split("auroc = ", 1)[1].split(",")[0])
    assert auroc >= 0.9
    site = Path(next(line for line in out.splitlines() if line.startswith("leaderboard: ")).split()[1])
    assert site.is_file() and "padim" in site.read_text()
    [home] = tmp_path.glob("leadersboard-demo-*")
    # Everything the demo started is gone: serve stopped Redis, MLflow and the worker (all of them
    # inherit the demo's LEADERSBOARD_HOME).
    marker = f"LEADERSBOARD_HOME={home}".encode()
    leftovers = [pid.name for pid in Path("/proc").iterdir() if pid.name.isdigit()
                 and marker in _environ(pid).split(b"\0")]
    assert leftovers == []
    assert not list((home / "scratch").glob("*"))


def _environ(pid: Path) -> bytes:
    try:
        return (pid / "environ").read_bytes()
    except OSError:
        return b""
