"""Admission against a real Redis: both limits, all or nothing, exact under concurrency, and refusals
that say how many slots are left and when the next one opens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis

from leadersboard.admission import WINDOW_SECONDS, Admission
from leadersboard.contract import active_key, hourly_key
from leadersboard.local.redis_server import RedisServer
from leadersboard.settings import Limits

T = TypeVar("T")
NOW = 1_800_000_000.0


def with_admission(server: RedisServer, body: Callable[[Admission, Redis], Awaitable[T]],
                   limits: Limits | None = None) -> T:
    async def run() -> T:
        redis = Redis.from_url(server.url)
        try:
            return await body(Admission(redis, limits or Limits(submissions_per_hour=3, max_active_jobs=2)), redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def test_slots_are_taken_and_given_back(redis_server: RedisServer) -> None:
    async def body(admission: Admission, redis: Redis) -> tuple[Any, ...]:
        first = await admission.reserve("alice", ["s1"], ["j1"], now=NOW)
        counts = (await redis.zcard(hourly_key("alice")), await redis.zcard(active_key("alice")))
        await admission.release("alice", [], ["j1"])
        return first, counts, await redis.zcard(active_key("alice")), await redis.zcard(hourly_key("alice"))

    first, counts, active_after, hourly_after = with_admission(redis_server, body)
    assert first is None and counts == (1, 1)
    assert (active_after, hourly_after) == (0, 1)  # a job's end gives back its slot, not the hour's


def test_all_or_nothing(redis_server: RedisServer) -> None:
    async def body(admission: Admission, redis: Redis) -> tuple[Any, ...]:
        refusal = await admission.reserve("alice", ["s1", "s2"], ["j1", "j2", "j3"], now=NOW)
        return refusal, await redis.zcard(hourly_key("alice")), await redis.zcard(active_key("alice"))

    refusal, hourly, active = with_admission(redis_server, body)
    assert refusal is not None and refusal.rule == "concurrency"
    assert (hourly, active) == (0, 0)


def test_the_same_ids_take_their_slots_once(redis_server: RedisServer) -> None:
    async def body(admission: Admission, redis: Redis) -> tuple[Any, ...]:
        results = [await admission.reserve("alice", ["s1"], ["j1"], now=NOW) for _ in range(5)]
        return results, await redis.zcard(hourly_key("alice"))

    results, hourly = with_admission(redis_server, body)
    assert results == [None] * 5 and hourly == 1


def test_the_rolling_hour_refusal_says_when_the_next_slot_opens(redis_server: RedisServer) -> None:
    async def body(admission: Admission, redis: Redis) -> tuple[Any, ...]:
        for i in range(3):
            assert await admission.reserve("alice", [f"s{i}"], [], now=NOW + i * 60) is None
        refused = await admission.reserve("alice", ["s9"], [], now=NOW + 600)
        reopened = await admission.reserve("alice", ["s9"], [], now=NOW + WINDOW_SECONDS + 1)
        return refused, reopened

    refused, reopened = with_admission(redis_server, body)
    assert refused is not None and reopened is None
    assert refused.rule == "rate-limit" and refused.retry_after == WINDOW_SECONDS - 600
    assert "0 of 3 submissions left in the rolling hour, this needs 1" in refused.message
    assert "the next slot opens at" in refused.message and "(in 50 min 0 s)" in refused.message
    assert refused.headers() == {"Retry-After": str(WINDOW_SECONDS - 600), "X-RateLimit-Remaining-Submissions": "0",
                                 "X-RateLimit-Remaining-Jobs": "2"}
    assert str(refused).startswith("[rate-limit] 3 per hour: ")


def test_the_concurrency_refusal_says_how_to_free_a_slot(redis_server: RedisServer) -> None:
    async def body(admission: Admission, redis: Redis) -> Any:
        await admission.reserve("alice", ["s1", "s2"], ["j1", "j2"], now=NOW)
        return await admission.reserve("alice", [], ["j3"], now=NOW)

    refused = with_admission(redis_server, body)
    assert refused.rule == "concurrency" and refused.remaining_jobs == 0 and refused.remaining_submissions == 1
    assert "2 of your jobs are pending or running, 0 slot(s) free" in refused.message
    assert "-o run=false" in refused.fix


def test_users_have_their_own_limits(redis_server: RedisServer) -> None:
    async def body(admission: Admission, redis: Redis) -> list[Any]:
        await admission.reserve("alice", ["a1", "a2", "a3"], [], now=NOW)
        return [await admission.reserve("bob", ["b1"], [], now=NOW), await admission.reserve("alice", ["a4"], [])]

    bob, alice = with_admission(redis_server, body)
    assert bob is None and alice is not None


def test_limits_hold_exactly_under_concurrent_requests(redis_server: RedisServer) -> None:
    async def body(admission: Admission, redis: Redis) -> tuple[Any, ...]:
        results = await asyncio.gather(*(admission.reserve("alice", [f"s{i}"], [f"j{i}"], now=NOW)
                                         for i in range(40)))
        return results, await redis.zcard(hourly_key("alice")), await redis.zcard(active_key("alice"))

    results, hourly, active = with_admission(redis_server, body, Limits(submissions_per_hour=10, max_active_jobs=7))
    assert sum(r is None for r in results) == 7 and (hourly, active) == (7, 7)


def test_a_push_keeps_what_it_reserved_until_it_settles(redis_server: RedisServer) -> None:
    async def body(admission: Admission, redis: Redis) -> tuple[Any, ...]:
        await admission.reserve("alice", ["s1"], ["j1"], push_id="p1",
                                pending={"refs/heads/users/alice": '["s1"]', "_created": "1"}, now=NOW)
        pending = await admission.pending("p1")
        listed = await admission.pending_pushes()
        await admission.forget("p1", "refs/heads/users/alice")
        return pending, listed, await admission.pending("p1")

    pending, listed, after = with_admission(redis_server, body)
    assert pending == {"refs/heads/users/alice": '["s1"]', "_created": "1"}
    assert listed == ["p1"] and after == {}  # only the bookkeeping field was left: the record is gone


def test_a_precheck_takes_nothing_and_agrees_with_reserve(redis_server: RedisServer) -> None:
    async def body(admission: Admission, redis: Redis) -> tuple[Any, ...]:
        for i in range(3):
            await admission.reserve("alice", [f"s{i}"], [], now=NOW + i)
        refused = await admission.precheck("alice", 1, 0, now=NOW + 10)
        fine = await admission.precheck("bob", 1, 1, now=NOW + 10)
        later = await admission.precheck("alice", 1, 0, now=NOW + WINDOW_SECONDS + 1)
        return refused, fine, later, await redis.zcard(hourly_key("alice")), await redis.exists(hourly_key("bob"))

    refused, fine, later, hourly, bob = with_admission(redis_server, body)
    assert refused is not None and refused.rule == "rate-limit" and refused.retry_after == WINDOW_SECONDS - 10
    assert fine is None and later is None and (hourly, bob) == (3, 0)
