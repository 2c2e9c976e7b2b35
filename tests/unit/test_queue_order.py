"""The queue against a real Redis, as arq's workers read it (lowest score first): a user's jobs after
their first wait behind the other users' first jobs; a free slot goes to the user with the fewest
running jobs; places are counted within each resource class, in that order; a class no live worker
takes is said."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from leadersboard.admission import Admission
from leadersboard.contract import job_user_key
from leadersboard.jobs import Job, JobStatus
from leadersboard.local.redis_server import RedisServer
from leadersboard.queue import FAIR_STEP_MS, enqueue, fair_order, positions
from leadersboard.settings import Limits
from leadersboard.webhook.intake.gpus import unserved_class

QUEUE = "test:fair-queue"


def job(job_id: str, user: str) -> Job:
    return Job(id=job_id, run_id="run-" + job_id, status=JobStatus.PENDING, user=user, benchmark="visa/pcb1",
               submission_id="s-" + job_id, folder="f", commit="0" * 40, entrypoint="main.py",
               config_file="config.yaml", resource_class=None, created_at=time.time())


async def admit_and_queue(admission: Admission, queue: ArqRedis, jobs: dict[str, list[str]]) -> None:
    """Each user's jobs take their slots at once, user by user, and are queued."""
    for user, ids in jobs.items():
        assert await admission.reserve(user, [f"s-{i}" for i in ids], ids) is None
        for job_id in ids:
            assert await enqueue(queue, QUEUE, job(job_id, user))


def test_a_burst_waits_behind_the_other_users_first_jobs(redis_server: RedisServer) -> None:
    async def run() -> tuple[list[str], list[float]]:
        queue = ArqRedis.from_url(redis_server.url)
        admission = Admission(queue, Limits(max_active_jobs=3, submissions_per_hour=10))
        try:
            # alice takes three slots at once, then bob one: the order their slots were taken in.
            await admit_and_queue(admission, queue, {"alice": ["a1", "a2", "a3"], "bob": ["b1"]})
            assert not await enqueue(queue, QUEUE, job("a1", "alice"))  # once only
            entries = await queue.zrange(QUEUE, 0, -1, withscores=True)
            return [m.decode() for m, _ in entries], [s for _, s in entries]
        finally:
            await queue.aclose()

    order, scores = asyncio.run(run())
    assert order == ["a1", "b1", "a2", "a3"]
    assert max(scores) < time.time() * 1000 - FAIR_STEP_MS  # every entry is due at once


def test_positions_count_within_each_class_and_skip_claimed_entries(redis_server: RedisServer) -> None:
    async def run() -> dict[str, tuple[str, int]]:
        queue = ArqRedis.from_url(redis_server.url)
        try:
            for n, (user, cls) in enumerate((("u1", "large"), ("u2", "small"), ("u3", "large"), ("u4", None))):
                queued = replace(job(f"j{n}", user), resource_class=cls)
                assert await enqueue(queue, QUEUE, queued)
            await queue.set(in_progress_key_prefix + "j0", b"1")  # a worker took j0
            return await positions(queue, QUEUE, default_class="small")
        finally:
            await queue.aclose()

    assert asyncio.run(run()) == {"j1": ("small", 1), "j2": ("large", 1), "j3": ("small", 2)}


def test_a_class_no_live_worker_takes_is_said() -> None:
    small_only = {"w1": {"classes": ["small"]}, "w2": {"classes": ["small", "medium"]}}
    assert unserved_class({}, "large") is None  # no worker live: nothing to say yet
    assert unserved_class(small_only, "medium") is None
    assert unserved_class({**small_only, "w3": {"classes": None}}, "large") is None  # w3 takes every class
    note = unserved_class(small_only, "large")
    assert note is not None and "'large'" in note and "medium, small" in note and "waits" in note


def test_a_free_slot_goes_to_the_user_with_the_fewest_running_jobs(redis_server: RedisServer) -> None:
    async def run() -> tuple[list[str], list[str], dict[str, tuple[str, int]]]:
        queue = ArqRedis.from_url(redis_server.url)
        admission = Admission(queue, Limits(max_active_jobs=3, submissions_per_hour=10))
        try:
            # alice's three jobs are queued; two of them run. bob's one job comes two hours later: its
            # score is what enqueue gives it then (past the hour a place in the order is worth).
            await admit_and_queue(admission, queue, {"alice": ["a1", "a2", "a3"], "bob": ["b1"]})
            await queue.zadd(QUEUE, {"b1": await queue.zscore(QUEUE, "b1") + 2 * FAIR_STEP_MS}, xx=True)
            queued = [m.decode() for m in await queue.zrange(QUEUE, 0, -1)]
            for running in ("a1", "a2"):
                await queue.set(in_progress_key_prefix + running, b"1")
            waiting = [m for m in await queue.zrange(QUEUE, 0, -1) if m.decode() in ("a3", "b1")]
            assert [m.decode() for m in waiting] == ["a3", "b1"]  # the scores alone would give alice's first
            order = [m.decode() for m in await fair_order(queue, waiting)]
            return queued, order, await positions(queue, QUEUE, default_class="medium")
        finally:
            await queue.aclose()

    queued, order, places = asyncio.run(run())
    assert queued == ["a1", "a2", "a3", "b1"]
    assert order == ["b1", "a3"]  # alice runs two, bob none
    assert places == {"b1": ("medium", 1), "a3": ("medium", 2)}


def test_an_entry_without_its_user_counts_as_no_running_jobs(redis_server: RedisServer) -> None:
    async def run() -> list[str]:
        queue = ArqRedis.from_url(redis_server.url)
        admission = Admission(queue, Limits(max_active_jobs=3, submissions_per_hour=10))
        try:
            assert await admission.reserve("carol", ["s-c1", "s-c2"], ["c1", "c2"]) is None
            await queue.set(job_user_key("c2"), "carol")
            await queue.set(in_progress_key_prefix + "c1", b"1")
            return [m.decode() for m in await fair_order(queue, [b"c2", b"old"])]  # "old": queued by an older version
        finally:
            await queue.aclose()

    assert asyncio.run(run()) == ["old", "c2"]
