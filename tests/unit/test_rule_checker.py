"""The rules' checker processes: a check past its deadline ends its pool and says so; a pool whose
processes died under it (ended after another check's deadline, killed) is replaced and the check
runs in the new one, so a push never meets a broken pool."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from leadersboard.webhook.intake.checks import ChecksTimedOut, RuleChecker


def test_a_dead_pool_is_replaced_and_a_slow_check_times_out() -> None:
    async def scenario() -> None:
        checker = RuleChecker(workers=1, deadline=2.0)
        try:
            await checker.warm()
            assert await checker.run(math.factorial, 5) == 120
            pool = checker._current()
            for process in list(pool._processes.values()):  # what a crash or a deadline elsewhere leaves
                process.kill()
                process.join()
            assert await checker.run(math.factorial, 6) == 720
            assert checker._current() is not pool
            with pytest.raises(ChecksTimedOut, match="longer than 2 s"):
                await checker.run(time.sleep, 30)
            assert await checker.run(math.factorial, 4) == 24
        finally:
            checker.close()

    asyncio.run(scenario())
