"""`accelerator: gpu` needs a worker with a GPU: refused at push time on an instance that has none.

Workers publish what their jobs get in Redis (`contract.sandbox_key`, refreshed every few seconds,
with a TTL), so the live ones are the keys present now. Read only when a submission asks for a GPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from leadersboard.contract import SANDBOX_GPUS, sandbox_key
from leadersboard.rules import Problem, SubmissionSpec


async def live_gpu_worker(redis: Redis) -> bool:
    """Whether a live worker's jobs see a GPU (False when Redis cannot say: a push then waits for nothing)."""
    try:
        async for key in redis.scan_iter(match=sandbox_key("*"), count=1000):
            raw = await redis.get(key)
            if raw is not None and _gpus(raw) > 0:
                return True
    except RedisError:
        return False
    return False


def _gpus(raw: bytes | str) -> int:
    try:
        value = json.loads(raw).get(SANDBOX_GPUS, 0)
    except (ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) else 0


async def gpu_problems(redis: Redis, specs: Iterable[SubmissionSpec]) -> list[Problem]:
    """A problem per submission asking for a GPU when no live worker has one; none otherwise."""
    wanting = [spec for spec in specs if spec.needs_gpu]
    if not wanting or await live_gpu_worker(redis):
        return []
    return [Problem("accelerator", f"{spec.folder}/{spec.config_file}",
                    f"trainer.accelerator is {spec.accelerator!r}, but no worker of this instance has a GPU",
                    "set 'accelerator: auto' (uses a GPU where there is one) or 'accelerator: cpu'")
            for spec in wanting]
