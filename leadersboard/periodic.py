"""Running one round of upkeep every few seconds, for as long as the caller's task lives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


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
