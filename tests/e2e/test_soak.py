"""The soak benchmark, short: two users at their limits for under a minute while Redis, MLflow and the
worker are killed; every admitted job ends, none is lost, every active slot is given back
(benchmarks/soak.py checks these and exits 1 otherwise; the full run is 30 minutes, 10 users)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)  # under a minute of load, then the drain: 3 minutes alone, more on a busy CI host
def test_a_short_soak_loses_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--minutes", "0.8", "--users", "2", "--workers", "1",
         "--fault-every", "15", "--job-seconds", "1-2", "--quick-upkeep", "--seed", "3"],
        capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "lost: 0 []" in result.stdout and "active slots at the end: 0" in result.stdout, result.stdout
    assert "faults injected: {}" not in result.stdout, result.stdout
