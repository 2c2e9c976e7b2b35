"""The caller's jobs: list, status, logs, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from arq.jobs import Job as QueueJob
from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from leadersboard.contract import LOG_ARTIFACT, log_key
from leadersboard.jobs import Job, JobStatus
from leadersboard.names import RESOURCE_CLASS
from leadersboard.queue import positions
from leadersboard.users import Caller

from ..deps import CurrentUser, DependenciesUp, ServiceDep
from ..intake.gpus import unserved_class
from ..intake.intake import JobRefused
from ..service import Service

router = APIRouter(prefix="/jobs", tags=["jobs"])
CANCEL_WAIT_SECONDS = 15


async def _own_job(service: Service, job_id: str, caller: Caller) -> Job:
    """The caller's job (any job, for an admin); 404 when there is none, 403 when it is another's."""
    job = await asyncio.to_thread(service.jobs.find, job_id) if _plausible(job_id) else None
    if job is None:
        raise HTTPException(404, f"No job {job_id}")
    if job.user != caller.name and not caller.admin:
        raise HTTPException(403, "This job is not yours")
    return job


def _plausible(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)


class JobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resource_class: str | None = Field(default=None, pattern=f"^{RESOURCE_CLASS.pattern}$")


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    submission_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    config: JobConfig = Field(default_factory=JobConfig)


@router.post("", status_code=202, dependencies=[DependenciesUp],
             responses={200: {"description": "The submission's job is pending or running already: that job, "
                                             "nothing made or spent"}})
async def create_job(body: JobRequest, caller: CurrentUser, service: ServiceDep) -> JSONResponse:
    """Run one of the caller's submissions: its job when it has one pending or running (200), else a new
    one (202), e.g. for a submission pushed with -o run=false, or a re-run of one whose job ended."""
    sub = await asyncio.to_thread(service.intake.submissions.get, body.submission_id)
    if sub is None:
        raise HTTPException(404, f"No submission {body.submission_id}")
    if sub.user != caller.name:
        raise HTTPException(403, "This submission is not yours")
    unknown_class = service.settings.resource_classes.problem(body.config.resource_class)
    if unknown_class:
        raise HTTPException(400, f"config.resource_class: {unknown_class}")
    try:
        job, made = await service.intake.request_job(sub, body.config.resource_class)
    except JobRefused as exc:
        raise HTTPException(429, str(exc), headers=exc.refusal.headers()) from None
    note = unserved_class(service.dependencies.state.sandboxes, job.resource_class) \
        if job.resource_class and job.status == JobStatus.PENDING else None
    return JSONResponse({"job_id": job.id, "status": job.status, "resource_class": job.resource_class,
                         **({"note": note} if note else {})}, status_code=202 if made else 200)


@router.get("")
async def list_jobs(caller: CurrentUser, service: ServiceDep, user: str | None = None) -> list[dict[str, Any]]:
    """The caller's jobs, newest first (an admin may ask for another user's with `?user=NAME`)."""
    if user is not None and user != caller.name and not caller.admin:
        raise HTTPException(403, "Only admins see other users' jobs")
    jobs = await asyncio.to_thread(service.jobs.for_user, user or caller.name)
    return await _placed(service, [job.status_document() for job in sorted(jobs, key=lambda j: j.created_at,
                                                                            reverse=True)])


@router.get("/{job_id}/status")
async def job_status(job_id: str, caller: CurrentUser, service: ServiceDep) -> dict[str, Any]:
    """One job's status, times, metrics and, when it failed, why; a pending job's place in its class's queue."""
    return (await _placed(service, [(await _own_job(service, job_id, caller)).status_document()]))[0]


async def _placed(service: Service, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`queue_position` (1: next) on each pending job's document, among the waiting jobs of its resource
    class; left out while Redis does not answer (the status itself comes from MLflow)."""
    if not any(doc["status"] == JobStatus.PENDING for doc in documents):
        return documents
    try:
        places = await positions(service.redis, service.settings.queue_name,
                                 service.settings.resource_classes.default)
    except RedisError:
        return documents
    for doc in documents:
        if doc["status"] == JobStatus.PENDING and doc["job_id"] in places:
            doc["queue_position"] = places[doc["job_id"]][1]
    return documents


@router.get("/{job_id}/logs", response_class=PlainTextResponse)
async def job_logs(job_id: str, caller: CurrentUser, service: ServiceDep) -> PlainTextResponse:
    """The job's output: live while it runs, kept after it ends."""
    job = await _own_job(service, job_id, caller)
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


@router.post("/{job_id}/cancel", dependencies=[DependenciesUp])
async def cancel_job(job_id: str, caller: CurrentUser, service: ServiceDep) -> dict[str, Any]:
    """Stop the job (its process or container too); a job that ended stays as it is. Admins may stop any."""
    job = await _own_job(service, job_id, caller)
    if not job.status.active:
        raise HTTPException(409, f"The job has ended already ({job.status})")
    if not job.run_id:
        raise HTTPException(409, "The job is being created right now: cancel it again in a moment")
    queued = QueueJob(job.id, service.queue, _queue_name=service.settings.queue_name)
    pending = job.status == JobStatus.PENDING
    if pending:  # ended first, so a worker that picks the entry up anyway skips it
        await service.jobs.end(job, JobStatus.CANCELLED, "cancelled on request")
    with contextlib.suppress(TimeoutError):  # a running job's worker records the end itself
        await queued.abort(timeout=0.1 if pending else CANCEL_WAIT_SECONDS, poll_delay=0.1)
    return (await asyncio.to_thread(service.jobs.read, job.run_id)).status_document()
