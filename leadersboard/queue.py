"""The job queue (arq on Redis): an entry names a job and its run; the worker runs `JOB_FUNCTION`."""

from __future__ import annotations

from arq.connections import ArqRedis

from .contract import JOB_FUNCTION
from .jobs import Job


async def enqueue(queue: ArqRedis, queue_name: str, job: Job) -> bool:
    """Queue the job once: arq refuses a second entry with the same id while one exists; False then."""
    entry = await queue.enqueue_job(JOB_FUNCTION, job.id, job.run_id, _job_id=job.id, _queue_name=queue_name)
    return entry is not None
