"""A stop never hangs on its upkeep tasks: cancelled again when they swallow it, left behind at the bound."""

from __future__ import annotations

import asyncio
import logging

import pytest

from leadersboard.periodic import end_tasks


class Upkeep:
    """Takes its first `swallows` cancellations for failed rounds (as `every` takes a TimeoutError) and
    goes on; ends at the next one."""

    def __init__(self, swallows: int) -> None:
        self.swallows = swallows
        self.ended = False

    async def run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.swallows == 0:
                    self.ended = True
                    raise
                self.swallows -= 1


async def _fails() -> None:
    raise RuntimeError("the round broke")


def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    upkeep = Upkeep(swallows=2)

    async def scenario() -> bool:
        task = asyncio.create_task(upkeep.run())
        await asyncio.sleep(0)
        await end_tasks([task], within=30)
        return task.cancelled()

    assert asyncio.run(scenario()) and upkeep.ended


def test_a_task_that_will_not_end_is_left_behind_at_the_bound_and_a_failed_one_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    stubborn = Upkeep(swallows=10**9)

    async def scenario() -> bool:
        task = asyncio.create_task(stubborn.run(), name="stubborn upkeep")
        failed = asyncio.create_task(_fails(), name="broken upkeep")
        await asyncio.sleep(0)
        await end_tasks([task, failed], within=1)
        left_running = not task.done()
        stubborn.swallows = 0  # now it ends, so that the test leaves nothing running
        task.cancel()
        await asyncio.wait([task])
        return left_running

    with caplog.at_level(logging.ERROR, logger="leadersboard.periodic"):
        assert asyncio.run(scenario()) and stubborn.ended
    assert "stubborn upkeep did not end within 1 s of being cancelled; left behind" in caplog.text
    assert "broken upkeep had failed" in caplog.text and "RuntimeError: the round broke" in caplog.text
