"""Running one round of upkeep every few seconds, for as long as the caller's task lives, and ending
such tasks within a bound when their owner stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

log = logging.getLogger(__name__)
RECANCEL_SECONDS = 0.5  # a task still running this long after its cancellation is cancelled again


async def every(seconds: float, round_: Callable[[], Awaitable[object]], name: str) -> None:
    """Await `round_()` now and then every `seconds`; a round that fails is logged and the next one
    retries (a passing fault: Redis or MLflow restarting). Ends only when cancelled."""
    while True:
        try:
            outcome = await round_()
            if outcome:
                log.info("%s: %s", name, outcome)
        except Exception:
            log.exception("%s round failed; the next one retries", name)
        await asyncio.sleep(max(1.0, seconds))


async def end_tasks(tasks: Collection[asyncio.Task[Any]], within: float) -> None:
    """Cancel `tasks` and wait for them to end, `within` seconds at most: a stop never waits on them
    without bound.

    A task that swallowed its cancellation is cancelled again at its next await: in Python 3.11,
    `asyncio.wait_for` can turn a cancellation into the TimeoutError of the call it wraps, which
    `every` then takes for a failed round and goes on. A task still running at the deadline is
    logged by name and left to the event loop's own end; one that had failed is logged with its error.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = {task for task in tasks if not task.done()}
    while pending and (left := deadline - loop.time()) > 0:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_SECONDS, left))
    for task in pending:
        log.error("%s did not end within %.0f s of being cancelled; left behind", task.get_name(), within)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("%s had failed", task.get_name(), exc_info=task.exception())
