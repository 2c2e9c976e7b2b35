"""The job queue (arq on Redis): an entry names a job and its run; the worker runs `JOB_FUNCTION`."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from .contract import JOB_FUNCTION
from .jobs import Job

RIDE_OUT_TRIES = 40  # at most 1 s apart: a command waits about 40 s for Redis to come back


async def enqueue(queue: ArqRedis, queue_name: str, job: Job) -> bool:
    """Queue the job once: arq refuses a second entry with the same id while one exists; False then."""
    entry = await queue.enqueue_job(JOB_FUNCTION, job.id, job.run_id, _job_id=job.id, _queue_name=queue_name)
    return entry is not None


def ride_out_restarts() -> dict[str, Any]:
    """Redis client options with which a command waits for a restarting Redis instead of failing (OSError:
    a refused connection, which redis-py retries only when told):
    `serve` restarts its Redis within seconds, and a worker that failed would lose the job it runs."""
    return {"retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), RIDE_OUT_TRIES),
            "retry_on_error": [ConnectionError, TimeoutError, OSError]}
