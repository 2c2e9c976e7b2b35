"""The queue against a real Redis, as arq's workers read it (lowest score first): a user's jobs after
their first wait behind the other users' first jobs; places are counted within each resource class;
a class no live worker takes is said."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from leadersboard.admission import Admission
from leadersboard.jobs import Job, JobStatus
from leadersboard.local.redis_server import RedisServer
from leadersboard.queue import FAIR_STEP_MS, enqueue, positions
from leadersboard.settings import Limits
from leadersboard.webhook.intake.gpus import unserved_class

QUEUE = "test:fair-queue"


def job(job_id: str, user: str) -> Job:
    return Job(id=job_id, run_id="run-" + job_id, status=JobStatus.PENDING, user=user, benchmark="visa/pcb1",
               submission_id="s-" + job_id, folder="f", commit="0" * 40, entrypoint="main.py",
               config_file="config.yaml", resource_class=None, created_at=time.time())


def test_a_burst_waits_behind_the_other_users_first_jobs(redis_server: RedisServer) -> None:
    async def run() -> tuple[list[str], list[float]]:
        queue = ArqRedis.from_url(redis_server.url)
        admission = Admission(queue, Limits(max_active_jobs=3, submissions_per_hour=10))
        try:
            # alice takes three slots at once, then bob one: the order their slots were taken in.
            for user, ids in (("alice", ["a1", "a2", "a3"]), ("bob", ["b1"])):
                assert await admission.reserve(user, [f"s-{i}" for i in ids], ids) is None
                for job_id in ids:
                    assert await enqueue(queue, QUEUE, job(job_id, user))
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
