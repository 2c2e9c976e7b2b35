"""The job reconciler against the real Redis and MLflow: a dead worker's job runs again once, then
fails giving its slots back; the slot of a job that ended is dropped within one round."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from arq.connections import RedisSettings, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix
from redis.asyncio import Redis

from leadersboard.admission import Admission
from leadersboard.contract import active_key, heartbeat_key, hourly_key
from leadersboard.jobs import SLOT_GIVEN_BACK, JobStatus, JobStore
from leadersboard.queue import CLAIM_EXTRA_SECONDS, arq_job_timeout
from leadersboard.runner.reconcile import CLAIM_START_SECONDS, LOST_TWICE, JobReconciler

from support.api import Api

T = TypeVar("T")


def reconciling(api: Api, step: Callable[[JobReconciler, Redis, JobStore], Awaitable[T]]) -> T:
    """Run `step` with a reconciler as `serve` makes it (beats every second: a lost worker is seen in 2 s)."""
    settings = replace(api.settings, runner=replace(api.settings.runner, heartbeat_seconds=1))
    assert settings.redis_url and settings.mlflow_tracking_uri

    async def run() -> T:
        redis = Redis.from_url(settings.redis_url or "")
        queue = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""),
                                  default_queue_name=settings.queue_name)
        jobs = JobStore(settings.mlflow_tracking_uri or "", settings.db_path, Admission(redis, settings.limits))
        try:
            # The reconciler judges workers only once Redis has been up for two beats (a Redis just started
            # has not heard the live ones yet): the test process's own Redis may have started a moment ago.
            while int((await redis.info("server"))["uptime_in_seconds"]) <= 2 * settings.runner.heartbeat_seconds:
                await asyncio.sleep(0.2)
            return await step(JobReconciler(settings, redis, queue, jobs), redis, jobs)
        finally:
            await queue.aclose()
            await redis.aclose()

    return asyncio.run(run())


def pending_job(api: Api) -> tuple[str, str]:
    """(user, job id) of a fresh upload's pending job."""
    user = next(iter(api.tokens))
    answer = api.upload(user)
    assert answer.status_code == 201, answer.text
    return user, answer.json()["job_id"]


def test_a_dead_workers_job_runs_again_once_then_fails(api: Api) -> None:
    user, job_id = pending_job(api)

    async def step(reconciler: JobReconciler, redis: Redis, jobs: JobStore) -> None:
        job = await asyncio.to_thread(jobs.find, job_id)
        assert job is not None
        # A worker of another host took it, and died: its claim on the queue entry stays behind.
        await asyncio.to_thread(jobs.mark_running, job, "elsewhere:1")
        await redis.set(in_progress_key_prefix + job_id, b"1")
        report = await reconciler.run_once(now=time.time() + 60)
        assert report.handed_back == 1 and report.ended == 0
        again = await asyncio.to_thread(jobs.read, job.run_id)
        assert (again.status, again.attempts, again.lost, again.started_at) == (JobStatus.PENDING, 1, 1, None)
        assert not await redis.exists(in_progress_key_prefix + job_id)
        assert await redis.exists(job_key_prefix + job_id)  # still queued, under the same id
        assert (await redis.zcard(hourly_key(user)), await redis.zcard(active_key(user))) == (1, 1)

        await asyncio.to_thread(jobs.mark_running, again, "elsewhere:2")
        await redis.set(in_progress_key_prefix + job_id, b"1")
        report = await reconciler.run_once(now=time.time() + 60)
        assert report.ended == 1
        # Its queue entry goes with it: no worker holds it, and the queue no longer counts it.
        assert not await redis.exists(in_progress_key_prefix + job_id, job_key_prefix + job_id)
        assert await redis.zscore(api.settings.queue_name, job_id) is None
        ended = await asyncio.to_thread(jobs.read, job.run_id)
        assert ended.status == JobStatus.FAILED and ended.attempts == 2
        assert ended.error == f"{LOST_TWICE}; {SLOT_GIVEN_BACK}"
        assert (await redis.zcard(hourly_key(user)), await redis.zcard(active_key(user))) == (0, 0)

    reconciling(api, step)


def test_a_claim_left_by_a_worker_that_died_before_starting_the_job_is_freed(api: Api) -> None:
    _, job_id = pending_job(api)
    claim = in_progress_key_prefix + job_id
    held_ms = (arq_job_timeout(api.settings.limits) + CLAIM_EXTRA_SECONDS) * 1000  # as arq sets it

    async def claimed(seconds_ago: float, redis: Redis) -> None:
        await redis.psetex(claim, int(held_ms - seconds_ago * 1000), b"1")

    async def step(reconciler: JobReconciler, redis: Redis, jobs: JobStore) -> None:
        # Claimed just now: a live worker is about to mark it running.
        await claimed(5, redis)
        assert (await reconciler.run_once()).claims_freed == 0 and await redis.exists(claim)
        # Claimed long ago, but beating: left alone.
        await claimed(CLAIM_START_SECONDS + 60, redis)
        await redis.set(heartbeat_key(job_id), "alive:1", ex=30)
        assert (await reconciler.run_once()).claims_freed == 0 and await redis.exists(claim)
        # Claimed long ago, never started, no beat: its worker died in between; the entry is free again.
        await redis.delete(heartbeat_key(job_id))
        assert (await reconciler.run_once()).claims_freed == 1
        assert not await redis.exists(claim)
        assert await redis.zscore(api.settings.queue_name, job_id) is not None  # still queued, same id
        job = await asyncio.to_thread(jobs.find, job_id)
        assert job is not None and job.status == JobStatus.PENDING

    reconciling(api, step)


def test_a_slot_kept_by_an_ended_job_is_dropped_in_one_round(api: Api) -> None:
    user, job_id = pending_job(api)

    async def step(reconciler: JobReconciler, redis: Redis, jobs: JobStore) -> None:
        job = await asyncio.to_thread(jobs.find, job_id)
        assert job is not None
        await jobs.end(job, JobStatus.CANCELLED, "cancelled on request")
        await redis.zadd(active_key(user), {job_id: time.time()})  # a release Redis lost (a restart, say)
        await reconciler.run_once()
        assert await redis.zcard(active_key(user)) == 0

    reconciling(api, step)
