"""`leadersboard worker`: one arq worker (one per GPU), running one job at a time.

arq owns polling, signals and aborts; this module only builds its settings and the context the
job function needs (made on start-up, closed on shutdown — nothing at import time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from arq import Worker
from arq.connections import RedisSettings
from arq.worker import func
from redis.asyncio import Redis
from redis.exceptions import RedisError

from leadersboard.admission import Admission
from leadersboard.contract import JOB_FUNCTION, SANDBOX_CLASSES, SANDBOX_GPUS, SANDBOX_REPORTED_AT, sandbox_key
from leadersboard.jobs import JobStore
from leadersboard.periodic import end_tasks, every
from leadersboard.queue import arq_job_timeout, ride_out_restarts
from leadersboard.settings import Settings
from leadersboard.site_generator import SiteBuilder, request_rebuild

from .classes import ClassWorker, FairWorker
from .docker_executor import DockerExecutor, DockerUnavailable
from .host_leftovers import sweep_joined_host
from .job import Executor, WorkerContext, run_job
from .process_executor import ProcessExecutor
from .remote import CodeCache, Joined
from .sandbox import CONFINED, SandboxError

log = logging.getLogger(__name__)

TASKS_END_SECONDS = 5  # at shutdown, for the report and sweep tasks to end once cancelled
HEALTH_CHECK_SECONDS = 10  # /healthz sees a worker as alive while arq's health key is fresh
# arq counts the tries of a queue entry and refuses it past this. Ours are counted on the job's run
# (handed back at a stop, run again once after a lost worker): arq must never refuse an entry handed back.
ARQ_MAX_TRIES = 1000


def build_worker(settings: Settings, gpu: str | None = None, burst: bool = False,
                 joined: Joined | None = None, classes: frozenset[str] | None = None) -> Worker:
    """The arq worker; `joined`: it runs on another host than the server, which it joined by URL;
    `classes`: the resource classes whose jobs it takes (None: every class)."""
    if joined is not None:
        settings = joined.settings(settings)
        os.environ.update(joined.mlflow_env())  # the MLflow client signs in to the gateway with them
    unknown = sorted((classes or frozenset()) - set(settings.resource_classes.names))
    if unknown:
        raise ValueError(f"unknown resource class {', '.join(unknown)}: this instance has "
                         f"{', '.join(settings.resource_classes.names)}")
    if not settings.redis_url or not settings.mlflow_tracking_uri:
        raise ValueError("a worker needs LEADERSBOARD_REDIS_URL and MLFLOW_TRACKING_URI")
    executor = make_executor(settings)
    if isinstance(executor, ProcessExecutor):
        executor.keep_mounts_private()
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    redis_url, tracking_uri = settings.redis_url, settings.mlflow_tracking_uri

    async def startup(ctx: dict[str, Any]) -> None:
        redis = Redis.from_url(redis_url, **ride_out_restarts())
        site = None if joined else SiteBuilder(tracking_uri, settings.db_path, settings.site_dir,
                                                settings.site_cache_path)

        async def job_ended() -> None:
            if site is not None:
                site.request_rebuild()  # coalesced: a burst of finished jobs builds once
            else:  # the site is the server's: it builds when asked
                with contextlib.suppress(RedisError):
                    await request_rebuild(redis)

        if site is not None:
            await site.start()

        confinement = executor.confinement
        log.log(logging.INFO if confinement.level == CONFINED else logging.WARNING,
                "%s executor: jobs run %s", executor.name, confinement)
        # Whether a job here sees a GPU (a docker host without the NVIDIA runtime gives none): admission
        # refuses `accelerator: gpu` when no live worker has one.
        present = gpu_present(gpu)
        gpus = 1 if executor.view(settings.scratch_dir, gpu).gpu and present else 0
        report = {"executor": executor.name, "level": confinement.level, "summary": confinement.summary,
                  SANDBOX_GPUS: gpus, SANDBOX_CLASSES: sorted(classes) if classes else None}

        async def publish() -> None:  # what /healthz says about this worker's jobs; its time is the heartbeat
            await redis.set(sandbox_key(worker_id), json.dumps({**report, SANDBOX_REPORTED_AT: time.time()}),
                            ex=3 * HEALTH_CHECK_SECONDS)

        ctx["sandbox_report"] = asyncio.create_task(every(HEALTH_CHECK_SECONDS, publish, "sandbox report"))
        if joined is not None:  # the server's reconciler cannot reach this host: what dead jobs left here goes here
            ctx["host_sweep"] = asyncio.create_task(every(
                settings.runner.reconcile_seconds, lambda: sweep_joined_host(settings, redis, set(worker.tasks)),
                "host sweep"))
        ctx["site"] = site
        ctx["leadersboard"] = WorkerContext(
            settings=settings, redis=redis, jobs=JobStore(tracking_uri, admission=Admission(redis, settings.limits)),
            executor=executor, worker_id=worker_id, gpu=gpu, on_job_end=job_ended, aborted=worker.aborting_tasks,
            code=CodeCache(settings.home, joined) if joined else None, gpu_present=present)

    async def shutdown(ctx: dict[str, Any]) -> None:
        await end_tasks([ctx[name] for name in ("sandbox_report", "host_sweep") if name in ctx], TASKS_END_SECONDS)
        site: SiteBuilder | None = ctx.get("site")
        if site is not None:
            await site.stop()
        context: WorkerContext | None = ctx.get("leadersboard")
        if context is not None:
            with contextlib.suppress(RedisError):  # Redis may be gone first; the key expires anyway
                await context.redis.delete(sandbox_key(worker_id))
            await context.redis.aclose()

    serving: dict[str, Any] = {"classes": classes, "default": settings.resource_classes.default} if classes else {}
    worker = (ClassWorker if classes else FairWorker)(
        functions=[func(run_job, name=JOB_FUNCTION, max_tries=ARQ_MAX_TRIES)],
        queue_name=settings.queue_name,
        redis_settings=replace(RedisSettings.from_dsn(redis_url), **ride_out_restarts()),
        max_jobs=1,
        poll_delay=settings.runner.poll_delay_ms / 1000,
        allow_abort_jobs=True,
        job_timeout=arq_job_timeout(settings.limits),
        keep_result=3600,
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=True,
        # On SIGTERM or SIGINT: no new job; the running one may finish for this long, then it is
        # cancelled and handed back (`run_job`). arq cancels at once when this is 0.
        job_completion_wait=settings.runner.stop_grace_seconds,
        health_check_interval=HEALTH_CHECK_SECONDS,
        **serving,
    )
    return worker


def gpu_present(gpu: str | None, dev: Path = Path("/dev")) -> bool:
    """Whether the GPU a worker was given exists on this host (serve numbers its workers 0..N-1 whether or
    not the host has GPUs): its NVIDIA device node, or any when it is named by UUID."""
    if not gpu:
        return False
    if gpu.isdigit():
        return (dev / f"nvidia{gpu}").exists()
    return any(dev.glob("nvidia[0-9]*"))


def make_executor(settings: Settings) -> Executor:
    """The configured executor, checked before arq starts so that what cannot work is said plainly."""
    try:
        if settings.runner.executor == "docker":
            return DockerExecutor.from_settings(settings)
        if settings.runner.executor == "process":
            return ProcessExecutor.from_settings(settings)
    except (DockerUnavailable, SandboxError) as exc:
        raise ValueError(str(exc)) from exc
    raise ValueError(f"unknown executor {settings.runner.executor!r}; this worker supports: process, docker")
