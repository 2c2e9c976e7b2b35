"""How long jobs ran, as a histogram per resource class, kept in Redis by the workers that ran them.

The job index records when a job was made, not when it started or ended (those are in its MLflow run,
which GET /metrics does not read); so each worker adds a finished job's run time here, and the
histograms of every worker add up. Fields of the hash: `CLASS|LE` (cumulative bucket counts),
`CLASS|sum` and `CLASS|count`; CLASS is empty for a job that named no class."""

from __future__ import annotations

import math
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis

from .contract import DURATIONS_KEY

BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, math.inf)  # seconds: a minute to a large job's limit


@dataclass
class Histogram:
    buckets: dict[float, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))  # upper bound -> jobs
    sum: float = 0.0
    count: int = 0


async def observe(redis: Redis, resource_class: str | None, seconds: float) -> None:
    """Add one job's run time."""
    cls = resource_class or ""
    async with redis.pipeline(transaction=True) as pipe:
        for bound in BUCKETS:
            if seconds <= bound:
                pipe.hincrby(DURATIONS_KEY, f"{cls}|{_bound(bound)}", 1)
        pipe.hincrbyfloat(DURATIONS_KEY, f"{cls}|sum", seconds)
        pipe.hincrby(DURATIONS_KEY, f"{cls}|count", 1)
        await pipe.execute()


async def read(redis: Redis) -> dict[str, Histogram]:
    """Each class's histogram ("" for jobs that named none)."""
    raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(DURATIONS_KEY))
    bounds = {_bound(bound): bound for bound in BUCKETS}
    found: dict[str, Histogram] = {}
    for key, value in raw.items():
        cls, _, part = key.decode().rpartition("|")
        histogram = found.setdefault(cls, Histogram())
        if part == "sum":
            histogram.sum = float(value)
        elif part == "count":
            histogram.count = int(value)
        elif part in bounds:
            histogram.buckets[bounds[part]] = int(value)
    return found


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else str(int(bound))
