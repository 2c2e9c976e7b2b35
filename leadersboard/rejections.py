"""How many pushes and uploads the rules rejected, per rule, for GET /metrics: a rule that suddenly
rejects everyone (a data set renamed, a category removed) shows up before participants write in.

Kept in Redis, so that every process's rejections add up, as admission's refusals do. A push or an
upload counts once under each rule it broke; a failed count never changes the answer."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Iterable
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .contract import REJECTIONS_KEY


async def count(redis: Redis, rules: Iterable[str]) -> None:
    names = sorted(set(rules))
    if not names:
        return
    with contextlib.suppress(RedisError, OSError):
        async with redis.pipeline(transaction=False) as pipe:
            for rule in names:
                pipe.hincrby(REJECTIONS_KEY, rule, 1)
            await pipe.execute()


async def read(redis: Redis) -> dict[str, int]:
    """Rule -> pushes and uploads it rejected, ever."""
    raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(REJECTIONS_KEY))
    return {rule.decode(): int(number) for rule, number in sorted(raw.items())}
