"""The caller's jobs: list, status, logs, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from arq.jobs import Job as QueueJob
from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from leadersboard.constants import log_key
from leadersboard.intake import enqueue
from leadersboard.jobs import ACTIVE_STATUSES, Job
from leadersboard.submissions import job_id as job_id_for

from ..deps import CurrentUser, ServiceDep
from ..service import Service

router = APIRouter(prefix="/jobs", tags=["jobs"])
LOG_ARTIFACT = "leadersboard/job.log"
CANCEL_WAIT_SECONDS = 15


async def _own_job(service: Service, job_id: str, user: str) -> Job:
    job = await asyncio.to_thread(service.jobs.find, job_id) if _plausible(job_id) else None
    if job is None:
        raise HTTPException(404, f"No job {job_id}")
    if job.user != user:
        raise HTTPException(403, "This job is not yours")
    return job


def _plausible(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)


class JobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resource_class: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    submission_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    config: JobConfig = Field(default_factory=JobConfig)


@router.post("", status_code=202)
async def create_job(body: JobRequest, user: CurrentUser, service: ServiceDep) -> JSONResponse:
    """Queue a new job for one of the caller's submissions (e.g. one pushed with -o run=false)."""
    sub = await asyncio.to_thread(service.intake.submissions.get, body.submission_id)
    if sub is None:
        raise HTTPException(404, f"No submission {body.submission_id}")
    if sub.user != user:
        raise HTTPException(403, "This submission is not yours")
    attempt = await asyncio.to_thread(service.intake.submissions.job_count, sub.id)
    sub = replace(sub, job_id=job_id_for(sub.id, attempt), run=True,
                  resource_class=body.config.resource_class or sub.resource_class)
    assert sub.job_id is not None
    refusal = await service.intake.admission.reserve(user, [], [sub.job_id])
    if refusal is not None:
        raise HTTPException(429, str(refusal), headers=refusal.headers())
    try:
        job = await asyncio.to_thread(service.jobs.create, sub, sub.job_id)
        await enqueue(service.queue, service.settings.queue_name, job.id, job.run_id)
    except BaseException:
        await service.intake.admission.release(user, [], [sub.job_id])  # a refused call leaves nothing behind
        raise
    return JSONResponse({"job_id": job.id, "status": job.status}, status_code=202)


@router.get("")
async def list_jobs(user: CurrentUser, service: ServiceDep) -> list[dict[str, Any]]:
    """The caller's jobs, newest first."""
    jobs = await asyncio.to_thread(service.jobs.for_user, user)
    return [job.status_document() for job in sorted(jobs, key=lambda j: j.created_at, reverse=True)]


@router.get("/{job_id}/status")
async def job_status(job_id: str, user: CurrentUser, service: ServiceDep) -> dict[str, Any]:
    """One job's status, times, metrics and, when it failed, why."""
    return (await _own_job(service, job_id, user)).status_document()


@router.get("/{job_id}/logs", response_class=PlainTextResponse)
async def job_logs(job_id: str, user: CurrentUser, service: ServiceDep) -> PlainTextResponse:
    """The job's output: live while it runs, kept after it ends."""
    job = await _own_job(service, job_id, user)
    live = await service.redis.get(log_key(job.id))
    if live is not None:
        return PlainTextResponse(live.decode("utf-8", errors="replace"))
    text = await asyncio.to_thread(_log_artifact, service, job)
    return PlainTextResponse(text if text is not None else "")


def _log_artifact(service: Service, job: Job) -> str | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = service.jobs.client.download_artifacts(job.run_id, LOG_ARTIFACT, tmp)
        except Exception:  # no log artifact (the job never started)
            return None
        return Path(path).read_text(encoding="utf-8", errors="replace")


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, user: CurrentUser, service: ServiceDep) -> dict[str, Any]:
    """Stop the job (its process or container too); a job that ended stays as it is."""
    job = await _own_job(service, job_id, user)
    if job.status not in ACTIVE_STATUSES:
        raise HTTPException(409, f"The job has ended already ({job.status})")
    queued = QueueJob(job.id, service.queue, _queue_name=service.settings.queue_name)
    if job.status == "pending":
        # Ended first, so a worker that picks the entry up anyway skips it.
        await asyncio.to_thread(service.jobs.finish, job.run_id, "cancelled", "cancelled on request")
        await service.intake.admission.release(job.user, [], [job.id])
    with contextlib.suppress(TimeoutError):  # the worker records the end itself
        await queued.abort(timeout=0.1 if job.status == "pending" else CANCEL_WAIT_SECONDS, poll_delay=0.1)
    return (await asyncio.to_thread(service.jobs.read, job.run_id)).status_document()
