"""The job reconciler: makes the queue and the workers agree with the jobs' runs after a loss.

- pending jobs with no queue entry are queued again (after Redis was lost, say);
- running jobs whose worker stopped beating are run again once (what the worker left running on
  this host, processes and containers under the docker executor, removed first), and ended as
  failed, with the reason, when it happens again: a job that kills its worker gets no third run;
- under the docker executor, this instance's containers whose job is no longer active are removed;
- on this host, the control groups and scratch folders of jobs no longer active are removed (with
  whatever still runs in such a group): a dead worker's, say;
- the admission counters of active jobs are rebuilt from the jobs themselves, and slots of jobs
  that ended are dropped.
Every step is idempotent; `serve` runs it every `runner.reconcile_seconds`. (Pushes nobody settled and
submissions never handed over are the service's: `Intake.reconcile`.)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import cast

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from leadersboard.contract import active_key, heartbeat_key
from leadersboard.jobs import Job, JobStatus, JobStore
from leadersboard.periodic import every
from leadersboard.queue import claimed_for, enqueue
from leadersboard.settings import Settings

from .containers import DockerError, remove_job_containers
from .host_leftovers import HostLeftovers, host_containers, remove_stale_containers
from .processes import kill_job_processes

log = logging.getLogger(__name__)

# Slots younger than this may belong to a push whose job is being created right now.
SLOT_GRACE_SECONDS = 600
# A live worker marks the job it claimed running within seconds (two MLflow calls); a claim this old on a
# job still pending is a dead worker's. Generous: freeing a live claim would let a second worker run it.
CLAIM_START_SECONDS = 120
RERUNS_AFTER_A_LOST_WORKER = 1
LOST_AND_RERUN = "the worker running this job stopped unexpectedly; it runs again from the start"
LOST_TWICE = ("the worker running this job stopped unexpectedly, twice (it ran again after the first time); "
              "the operators have the details")


@dataclass
class ReconcileReport:
    requeued: int = 0
    claims_freed: int = 0
    handed_back: int = 0
    ended: int = 0
    slots_restored: int = 0

    def __bool__(self) -> bool:
        return any((self.requeued, self.claims_freed, self.handed_back, self.ended, self.slots_restored))


class JobReconciler:
    def __init__(self, settings: Settings, redis: Redis, queue: ArqRedis, jobs: JobStore) -> None:
        """`jobs` gives slots back as jobs end (made with an `Admission`)."""
        self.settings = settings
        self.redis = redis
        self.queue = queue
        self.jobs = jobs

    async def run_once(self, now: float | None = None) -> ReconcileReport:
        now = time.time() if now is None else now
        report = ReconcileReport()
        # Containers first, jobs second: a container made meanwhile belongs to a job active in the list.
        containers = (await asyncio.to_thread(host_containers, self.settings)
                      if self.settings.runner.executor == "docker" else {})
        leftovers = await asyncio.to_thread(HostLeftovers.find, self.settings)
        active = await asyncio.to_thread(self.jobs.with_status, JobStatus.PENDING, JobStatus.RUNNING)
        grace = 2 * max(1, self.settings.runner.heartbeat_seconds)
        judge_workers = await self._redis_up_for(grace)
        ended: set[str] = set()
        for job in active:
            if job.status == JobStatus.PENDING:
                if await enqueue(self.queue, self.settings.queue_name, job):
                    report.requeued += 1
                    log.info("re-queued job %s (it had no queue entry)", job.id)
                elif judge_workers and await self._free_dead_claim(job):
                    report.claims_freed += 1
            elif judge_workers and now - (job.started_at or 0) > grace and not await self.redis.exists(
                    heartbeat_key(job.id)):
                lost = await self._still_running(job)
                if lost is None:
                    continue
                if await self._worker_lost(lost, leftovers):
                    ended.add(job.id)
                else:
                    report.handed_back += 1
        report.ended = len(ended)
        # Not from the list as read: a job ended just now must not get its slot back.
        report.slots_restored = await self._restore_slots([job for job in active if job.id not in ended], now)
        active_ids = {job.id for job in active}
        await asyncio.to_thread(remove_stale_containers,
                                sorted(c for c, job_id in containers.items() if job_id not in active_ids))
        await asyncio.to_thread(self._sweep_here, leftovers, active_ids)
        return report

    async def _worker_lost(self, job: Job, leftovers: HostLeftovers) -> bool:
        """The job's worker stopped beating: what it left here goes; the job runs again the first
        time, and fails the second. True when the job ended."""
        if job.worker and job.worker.rsplit(":", 1)[0] == socket.gethostname():
            kill_job_processes(job.id)  # what the dead worker started here must not run on
            await asyncio.to_thread(leftovers.remove, self.settings, job.id)
            if self.settings.runner.executor == "docker":
                await self._remove_containers(job.id)
        if job.lost < RERUNS_AFTER_A_LOST_WORKER:
            await asyncio.to_thread(self.jobs.hand_back, job, LOST_AND_RERUN, True)
            # The dead worker's claim on the queue entry would keep it from every worker for arq's job timeout.
            await self.redis.delete(in_progress_key_prefix + job.id)
            await enqueue(self.queue, self.settings.queue_name, job)  # when Redis lost the entry too
            log.warning("job %s: its worker %s stopped beating; it runs again", job.id, job.worker)
            return False
        await self.jobs.end(job, JobStatus.FAILED, LOST_TWICE, platform_fault=True)
        await self._drop_queue_entry(job.id)
        log.warning("ended job %s: its worker %s stopped beating, a second time", job.id, job.worker)
        return True

    async def _free_dead_claim(self, job: Job) -> bool:
        """A worker claimed the pending job's queue entry and died before it started the job: arq's claim
        would keep the entry from every worker for the job timeout (hours). Freed, the next worker takes it."""
        age = await claimed_for(self.redis, job.id, self.settings.limits)
        if age is None or age < CLAIM_START_SECONDS or await self.redis.exists(heartbeat_key(job.id)):
            return False
        await self.redis.delete(in_progress_key_prefix + job.id)
        log.warning("job %s: a worker claimed it %.0f s ago and never started it; another worker takes it",
                    job.id, age)
        return True

    async def _drop_queue_entry(self, job_id: str) -> None:
        """The dead worker's claimed entry of a job that ended: left, it sits in the queue (and in its
        counts) until arq's job timeout passes."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.settings.queue_name, job_id)
            pipe.delete(in_progress_key_prefix + job_id, job_key_prefix + job_id, retry_key_prefix + job_id)
            await pipe.execute()

    async def _redis_up_for(self, seconds: float) -> bool:
        """Whether Redis has been up this long: a Redis that just restarted has not yet received the
        beats of live workers, whose jobs must not be taken for lost."""
        try:
            info = await self.redis.info("server")
        except ResponseError:  # INFO refused (a managed Redis, say): the beats alone decide
            return True
        return int(info.get("uptime_in_seconds", seconds + 1)) > seconds

    def _sweep_here(self, leftovers: HostLeftovers, active_ids: set[str]) -> None:
        """What jobs that ended left on this host (a dead worker's, say)."""
        for job_id in sorted(leftovers.job_ids - active_ids):
            leftovers.remove(self.settings, job_id)
            log.info("removed what ended job %s left on this host", job_id)

    async def _remove_containers(self, job_id: str) -> None:
        try:
            removed = await asyncio.to_thread(remove_job_containers, job_id)
        except DockerError as exc:  # the engine is away: the job ends anyway, its container is the operator's
            log.warning("job %s: could not remove its container: %s", job_id, exc)
            return
        if removed:
            log.info("removed the container of job %s, left by its worker", job_id)

    async def _still_running(self, job: Job) -> Job | None:
        """The job as it is now, if it still runs the attempt whose beat is missing. Read again after the
        missing beat: a worker writes the final status before it drops the beat, so a job that ended
        meanwhile shows it here and is not ended a second time (nor one that started again meanwhile)."""
        current = await asyncio.to_thread(self.jobs.read, job.run_id)
        same_attempt = (current.worker, current.attempts) == (job.worker, job.attempts)
        return current if current.status == JobStatus.RUNNING and same_attempt else None

    async def _restore_slots(self, active: list[Job], now: float) -> int:
        """Active jobs hold an admission slot each, whatever Redis forgot; ended jobs hold none."""
        restored = 0
        by_user: dict[str, set[str]] = {}
        for job in active:
            if job.status.active:
                by_user.setdefault(job.user, set()).add(job.id)
        for user, ids in by_user.items():
            for job_id in ids:
                added = await cast(Awaitable[int], self.redis.zadd(active_key(user), {job_id: now}, nx=True))
                restored += added
        async for key in self.redis.scan_iter(match=active_key("*")):
            user = key.decode().split(":")[2]
            for member, score in await self.redis.zrange(key, 0, -1, withscores=True):
                job_id = member.decode()
                if job_id in by_user.get(user, set()):
                    continue
                if now - score > SLOT_GRACE_SECONDS or await self._ended(job_id):
                    await self.redis.zrem(key, job_id)
        return restored

    async def _ended(self, job_id: str) -> bool:
        """Whether the job exists and has ended (a slot younger than the grace may be a job being made)."""
        job = await asyncio.to_thread(self.jobs.find, job_id)
        return job is not None and not job.status.active

    async def forever(self) -> None:
        await every(self.settings.runner.reconcile_seconds, self.run_once, "job reconciler")
