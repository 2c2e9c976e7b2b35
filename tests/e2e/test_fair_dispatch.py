"""Fair dispatch with a real worker: alice queues three jobs, then bob one; the one free slot goes to
alice's first, then to bob's, before alice's second and third."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from support.platform import MLFLOW_MAIN, Platform

pytestmark = [pytest.mark.slow]


@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_a_burst_does_not_starve_another_user(make_platform: Callable[..., Platform], tmp_path: Path) -> None:
    platform = make_platform(workers=0, users=2)
    alice, bob = platform.instance.tokens
    main = MLFLOW_MAIN.format(auroc=0.5, f1=0.5)
    alice_git = platform.client(tmp_path, alice)
    alices = [platform.submit(alice_git, f"burst-{n}", main) for n in range(3)]
    bobs = platform.submit(platform.client(tmp_path, bob), "single", main)
    platform.start_worker()  # one slot, four jobs waiting
    started = {}
    for job_id, user in [*((j, alice) for j in alices), (bobs, bob)]:
        job = platform.wait_status(job_id, user, timeout=300)
        assert job["status"] == "completed", job
        started[job_id] = datetime.fromisoformat(job["started_at"])
    assert started[alices[0]] < started[bobs] < started[alices[1]] < started[alices[2]], started
