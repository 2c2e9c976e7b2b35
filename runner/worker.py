"""`leadersboard worker`: one arq worker (one per GPU), running one job at a time.

arq owns polling, signals and aborts; this module only builds its settings and the context the
job function needs (made on start-up, closed on shutdown — nothing at import time).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

from arq import Worker
from arq.connections import RedisSettings
from arq.worker import func
from redis.asyncio import Redis

from leadersboard.admission import Admission
from leadersboard.contract import JOB_FUNCTION
from leadersboard.jobs import JobStore
from leadersboard.settings import Settings
from leadersboard.site_generator import SiteBuilder

from .docker_executor import DockerExecutor, DockerUnavailable
from .job import Executor, WorkerContext, run_job
from .sandbox import ProcessExecutor

log = logging.getLogger(__name__)

# arq's own limit sits above ours so that our deadline, which kills the job's processes or container, fires first.
ARQ_MARGIN_SECONDS = 600
HEALTH_CHECK_SECONDS = 10  # /healthz sees a worker as alive while arq's health key is fresh


def build_worker(settings: Settings, gpu: str | None = None, burst: bool = False) -> Worker:
    if not settings.redis_url or not settings.mlflow_tracking_uri:
        raise ValueError("a worker needs LEADERSBOARD_REDIS_URL and MLFLOW_TRACKING_URI")
    if settings.runner.executor == "docker":
        try:  # checked here, before arq starts, so that a missing engine or image is said plainly
            docker: DockerExecutor | None = DockerExecutor.from_settings(settings)
        except DockerUnavailable as exc:
            raise ValueError(str(exc)) from exc
    elif settings.runner.executor == "process":
        docker = None
    else:
        raise ValueError(f"unknown executor {settings.runner.executor!r}; this worker supports: process, docker")
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    redis_url, tracking_uri = settings.redis_url, settings.mlflow_tracking_uri

    async def startup(ctx: dict[str, Any]) -> None:
        redis = Redis.from_url(redis_url)
        site = SiteBuilder(tracking_uri, settings.db_path, settings.site_dir, settings.site_cache_path)
        await site.start()

        async def job_ended() -> None:
            site.request_rebuild()  # coalesced: a burst of finished jobs builds once

        executor: Executor
        if docker is not None:
            executor = docker
            log.info("docker executor: %s", docker.describe())
        else:
            executor = ProcessExecutor(settings.runner.python or sys.executable)
            if not executor.isolates_network:
                log.warning("this host cannot give jobs a network namespace of their own: submissions can reach "
                            "the network (run the worker as root, or allow unprivileged user namespaces)")
        ctx["site"] = site
        ctx["leadersboard"] = WorkerContext(
            settings=settings, redis=redis, jobs=JobStore(tracking_uri, admission=Admission(redis, settings.limits)),
            executor=executor, worker_id=worker_id, gpu=gpu, on_job_end=job_ended)

    async def shutdown(ctx: dict[str, Any]) -> None:
        site: SiteBuilder | None = ctx.get("site")
        if site is not None:
            await site.stop()
        context: WorkerContext | None = ctx.get("leadersboard")
        if context is not None:
            await context.redis.aclose()

    return Worker(
        functions=[func(run_job, name=JOB_FUNCTION, max_tries=1)],
        queue_name=settings.queue_name,
        redis_settings=RedisSettings.from_dsn(redis_url),
        max_jobs=1,
        poll_delay=settings.runner.poll_delay_ms / 1000,
        allow_abort_jobs=True,
        job_timeout=settings.limits.job_timeout_seconds + ARQ_MARGIN_SECONDS,
        keep_result=3600,
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=True,
        health_check_interval=HEALTH_CHECK_SECONDS,
    )
