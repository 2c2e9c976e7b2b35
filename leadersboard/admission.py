"""Admission: submissions per rolling hour and jobs at once, per user, decided atomically in Redis.

One Lua script checks both limits and reserves every slot a push needs, or none: parallel pushes
(and API calls) by one user can never overshoot. A reservation is held under the push's id until
the push settles; a push that does not land gives its slots back, so a refused push spends nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .contract import REFUSALS_KEY, active_key, hourly_key, pending_push_key
from .settings import Limits

WINDOW_SECONDS = 3600
RULES = ("rate-limit", "concurrency")  # the rules a refusal names (spelled out below: the docs' check reads them)
PENDING_TTL_SECONDS = 24 * 3600

_RESERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local hour_limit = tonumber(ARGV[3])
local active_limit = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local active = redis.call('ZCARD', KEYS[2])
local i = 6
local nsubs = tonumber(ARGV[i])
local subs = {}
for k = 1, nsubs do subs[k] = ARGV[i + k] end
i = i + nsubs + 1
local njobs = tonumber(ARGV[i])
local jobs = {}
for k = 1, njobs do jobs[k] = ARGV[i + k] end
i = i + njobs + 1
local new_subs = 0
for _, s in ipairs(subs) do
  if not redis.call('ZSCORE', KEYS[1], s) then new_subs = new_subs + 1 end
end
local new_jobs = 0
for _, j in ipairs(jobs) do
  if not redis.call('ZSCORE', KEYS[2], j) then new_jobs = new_jobs + 1 end
end
if used + new_subs > hour_limit or active + new_jobs > active_limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, used, active, oldest[2] or ''}
end
for _, s in ipairs(subs) do redis.call('ZADD', KEYS[1], 'NX', now, s) end
for _, j in ipairs(jobs) do redis.call('ZADD', KEYS[2], 'NX', now, j) end
while i + 1 <= #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ttl) end
return {1, used + new_subs, active + new_jobs, ''}
"""


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused, in the words of the limit it broke."""

    rule: str
    message: str
    fix: str
    retry_after: int
    remaining_submissions: int
    remaining_jobs: int

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}. Fix: {self.fix}"

    def headers(self) -> dict[str, str]:
        """HTTP headers for a 429 answer: when to retry and what is left."""
        return {"Retry-After": str(self.retry_after),
                "X-RateLimit-Remaining-Submissions": str(self.remaining_submissions),
                "X-RateLimit-Remaining-Jobs": str(self.remaining_jobs)}


class Admission:
    def __init__(self, redis: Redis, limits: Limits) -> None:
        self.redis = redis
        self.limits = limits
        self._reserve = redis.register_script(_RESERVE)

    async def reserve(
        self,
        user: str,
        submission_ids: list[str],
        job_ids: list[str],
        push_id: str | None = None,
        pending: dict[str, str] | None = None,
        now: float | None = None,
    ) -> Refusal | None:
        """Take one hourly slot per submission and one active slot per job, all or none.

        `pending` (field -> JSON) is stored under `push_id` in the same step, so that what a push
        reserved can be released or confirmed later.
        """
        now = time.time() if now is None else now
        args: list[str | int | float] = [now, WINDOW_SECONDS, self.limits.submissions_per_hour,
                                         self.limits.max_active_jobs, PENDING_TTL_SECONDS,
                                         len(submission_ids), *submission_ids, len(job_ids), *job_ids]
        for field, value in (pending or {}).items():
            args += [field, value]
        keys = [hourly_key(user), active_key(user), pending_push_key(push_id or "none")]
        ok, used, active, oldest = await self._reserve(keys=keys, args=args)
        if ok:
            return None
        return await self._counted(self._refusal(len(submission_ids), len(job_ids), int(used), int(active),
                                                 float(oldest) if oldest else None, now))

    def _refusal(self, wanted_subs: int, wanted_jobs: int, used: int, active: int,
                 oldest: float | None, now: float) -> Refusal:
        hour_limit, active_limit = self.limits.submissions_per_hour, self.limits.max_active_jobs
        left_subs = max(0, hour_limit - used)
        left_jobs = max(0, active_limit - active)
        if used + wanted_subs > hour_limit:
            opens = (oldest or now) + WINDOW_SECONDS
            wait = max(1, int(opens - now + 0.999))
            at = datetime.fromtimestamp(opens, UTC).strftime("%H:%M:%S UTC")
            return Refusal(
                "rate-limit",
                f"{hour_limit} per hour: {left_subs} of {hour_limit} submissions left in the rolling hour, "
                f"this needs {wanted_subs}; the next slot opens at {at} (in {_duration(wait)})",
                "wait until then, or submit fewer folders at once", wait, left_subs, left_jobs)
        return Refusal(
            "concurrency",
            f"{active_limit} at once: {active} of your jobs are pending or running, {left_jobs} slot(s) free, "
            f"this needs {wanted_jobs}; a slot opens when one of your jobs ends",
            "wait for a job to finish, cancel one (POST /jobs/ID/cancel), or push with -o run=false to "
            "submit without running", 60, left_subs, left_jobs)

    async def precheck(self, user: str, submissions: int, jobs: int, now: float | None = None) -> Refusal | None:
        """Whether that many more could be admitted now, without taking anything: asked before the
        rules read a push or an upload, so that a user over a limit costs the service nothing. The
        atomic `reserve` afterwards decides."""
        now = time.time() if now is None else now
        used = int(await self.redis.zcount(hourly_key(user), now - WINDOW_SECONDS, "+inf"))
        active = int(await cast(Awaitable[int], self.redis.zcard(active_key(user))))
        if used + submissions <= self.limits.submissions_per_hour and active + jobs <= self.limits.max_active_jobs:
            return None
        oldest = await self.redis.zrangebyscore(hourly_key(user), now - WINDOW_SECONDS, "+inf", start=0, num=1,
                                                withscores=True)
        return await self._counted(
            self._refusal(submissions, jobs, used, active, float(oldest[0][1]) if oldest else None, now))

    async def _counted(self, refusal: Refusal) -> Refusal:
        """The refusal, counted by rule for GET /metrics (a request refused by `precheck` never reaches
        `reserve`, so each refused request counts once). A failed count never changes the answer."""
        with contextlib.suppress(RedisError):
            await cast(Awaitable[int], self.redis.hincrby(REFUSALS_KEY, refusal.rule, 1))
        return refusal

    async def release(self, user: str, submission_ids: list[str], job_ids: list[str]) -> None:
        """Give back slots (a push that did not land, a job that ended: job ids only)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if submission_ids:
                pipe.zrem(hourly_key(user), *submission_ids)
            if job_ids:
                pipe.zrem(active_key(user), *job_ids)
            await pipe.execute()

    async def pending(self, push_id: str) -> dict[str, str]:
        """What a push reserved and has not settled: field -> JSON (see `reserve`)."""
        raw = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(pending_push_key(push_id)))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def forget(self, push_id: str, field: str) -> None:
        """Drop one settled field of a push; the whole record once only bookkeeping is left."""
        key = pending_push_key(push_id)
        await cast(Awaitable[int], self.redis.hdel(key, field))
        if await cast(Awaitable[int], self.redis.hlen(key)) <= 1:
            await self.redis.delete(key)

    async def pending_pushes(self) -> list[str]:
        """The ids of all pushes with unsettled reservations."""
        prefix = pending_push_key("")
        return [key.decode().removeprefix(prefix) async for key in self.redis.scan_iter(match=prefix + "*")]


async def refusals(redis: Redis) -> dict[str, int]:
    """How many requests each rule refused, ever (every process's together)."""
    raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(REFUSALS_KEY))
    return {rule.decode(): int(count) for rule, count in raw.items()}


def _duration(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
