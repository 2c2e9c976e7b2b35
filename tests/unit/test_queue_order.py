"""The queue's fair order against a real Redis, as arq's workers read it (lowest score first): a
user's jobs after their first wait behind the other users' first jobs, each user's own in order."""

from __future__ import annotations

import asyncio
import time

from arq.connections import ArqRedis

from leadersboard.admission import Admission
from leadersboard.jobs import Job, JobStatus
from leadersboard.local.redis_server import RedisServer
from leadersboard.queue import FAIR_STEP_MS, enqueue
from leadersboard.settings import Limits

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
