"""The job queue (arq on Redis): an entry names a job and its run; the worker runs `JOB_FUNCTION`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from .contract import JOB_FUNCTION, active_key, job_class_key, job_user_key
from .jobs import Job
from .settings import Limits

FAIR_STEP_MS = 3600 * 1000  # a place in the fair order is worth an hour of waiting
FAIR_RANKS = 16  # places told apart (a user holds at most limits.max_active_jobs anyway)
ENTRY_DAYS = 1  # arq's entry lives this long (the reconciler queues a job whose entry is gone again)
RIDE_OUT_TRIES = 40  # at most 1 s apart: a command waits about 40 s for Redis to come back
# arq's own limit sits above ours so that our deadline, which kills the job's processes or container, fires first.
ARQ_MARGIN_SECONDS = 600
CLAIM_EXTRA_SECONDS = 10  # arq holds a worker's claim on an entry for the job timeout plus this


def arq_job_timeout(limits: Limits) -> int:
    """arq's job timeout: above the time limit of every resource class (`limits` is their ceiling)."""
    return limits.job_timeout_seconds + ARQ_MARGIN_SECONDS


async def claimed_for(redis: Redis, job_id: str, limits: Limits) -> float | None:
    """How many seconds ago a worker claimed the job's queue entry (read from what is left of arq's
    claim, which it sets to expire after the job timeout), or None when no worker holds it."""
    left_ms = int(await redis.pttl(in_progress_key_prefix + job_id))
    if left_ms < 0:  # no claim (-2), or one without an end (-1): none arq made
        return None
    return arq_job_timeout(limits) + CLAIM_EXTRA_SECONDS - left_ms / 1000


async def enqueue(queue: ArqRedis, queue_name: str, job: Job) -> bool:
    """Queue the job once: arq refuses a second entry with the same id while one exists; False then.

    The queue's order (workers then take the job of the user with the fewest running jobs first, this
    order between users with as many: `fair_order`): lowest score first, and a job's score is its time moved back by
    `FAIR_STEP_MS` for each place it has fewer of its user's jobs before it (their active jobs, pending
    or running, ranked by when their slots were taken). A user's second job so waits behind every
    other user's first one queued within the hour before it, and a burst never starves the others;
    past that hour it goes first again, so nothing waits for ever. Every score lies in the past: arq
    runs an entry once its score is due."""
    rank = await queue.zrank(active_key(job.user), job.id)
    places = min(int(rank or 0), FAIR_RANKS - 1)
    now_ms = int(time.time() * 1000)
    due = datetime.fromtimestamp((now_ms - (FAIR_RANKS - places) * FAIR_STEP_MS) / 1000, UTC)
    async with queue.pipeline(transaction=False) as pipe:  # what fair_order and the class filter read, in one trip
        pipe.set(job_class_key(job.id), job.resource_class or "", ex=timedelta(days=ENTRY_DAYS))
        pipe.set(job_user_key(job.id), job.user, ex=timedelta(days=ENTRY_DAYS))
        await pipe.execute()
    entry = await queue.enqueue_job(JOB_FUNCTION, job.id, job.run_id, _job_id=job.id, _queue_name=queue_name,
                                    _defer_until=due, _expires=timedelta(days=ENTRY_DAYS))
    return entry is not None


def ride_out_restarts() -> dict[str, Any]:
    """Redis client options with which a command waits for a restarting Redis instead of failing (OSError:
    a refused connection, which redis-py retries only when told):
    `serve` restarts its Redis within seconds, and a worker that failed would lose the job it runs."""
    return {"retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), RIDE_OUT_TRIES),
            "retry_on_error": [ConnectionError, TimeoutError, OSError]}


async def fair_order(redis: Redis, job_ids: list[bytes]) -> list[bytes]:
    """The due entries in the order a free worker takes them: the job of the user with the fewest
    running jobs first; between users with as many, the queue's own order (their scores, above). So
    when a slot frees, a user whose burst holds the other slots waits behind everyone else's job, as
    decided now, not when the entries were queued. An entry queued without its user counts as a user
    with none running."""
    if len(job_ids) < 2:
        return job_ids
    users = [user.decode() if user else "" for user in await redis.mget([job_user_key(i.decode()) for i in job_ids])]
    named = sorted(set(users) - {""})
    async with redis.pipeline(transaction=False) as pipe:  # three round trips, however many users
        for user in named:
            pipe.zrange(active_key(user), 0, -1)
        actives: list[list[bytes]] = await pipe.execute()
    keys = [in_progress_key_prefix + job_id.decode() for active in actives for job_id in active]
    claimed = iter(await redis.mget(keys) if keys else [])
    running = {"": 0} | {user: sum(next(claimed) is not None for _ in active)
                         for user, active in zip(named, actives, strict=True)}
    order = sorted(range(len(job_ids)), key=lambda i: (running[users[i]], i))
    return [job_ids[i] for i in order]


async def positions(redis: Redis, queue_name: str, default_class: str) -> dict[str, tuple[str, int]]:
    """Each queued job's resource class and place among its class's waiting jobs (1: next), in the
    order workers take them (`fair_order`). Entries a worker has claimed already are not waiting."""
    ids = [member.decode() for member in await fair_order(redis, await redis.zrange(queue_name, 0, -1))]
    if not ids:
        return {}
    named = await redis.mget([job_class_key(job_id) for job_id in ids])
    claimed = await redis.mget([in_progress_key_prefix + job_id for job_id in ids])
    places: dict[str, tuple[str, int]] = {}
    counts: dict[str, int] = {}
    for job_id, cls, taken in zip(ids, named, claimed, strict=True):
        if taken is not None:
            continue
        name = (cls.decode() if cls else "") or default_class
        counts[name] = counts.get(name, 0) + 1
        places[job_id] = (name, counts[name])
    return places
