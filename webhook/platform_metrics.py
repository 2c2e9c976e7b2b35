"""What GET /metrics reports about the platform, gathered without MLflow: the instance's job index
(jobs made, per class) and Redis (the queue, live workers, jobs pending and running, admission's
refusals, the rules' rejections).

Redis is read only while the service's last check (`dependencies.py`) saw it up, with the service's
own short timeouts; when it is down or a read fails, every series read from it is left out and
`leadersboard_redis_up` says 0, so an operator's scrape answers at once whatever is down."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import Redis

from leadersboard import job_durations, rejections
from leadersboard.admission import RULES, refusals
from leadersboard.contract import (
    ENDED_KEY,
    HEALTH_CHECK_SUFFIX,
    SANDBOX_REPORTED_AT,
    active_key,
    heartbeat_key,
    sandbox_key,
)

from .metrics_text import Family, number

if TYPE_CHECKING:  # the CLI's `status` reads Redis through this module: not the service's imports (MLflow)
    from .service import Service

STATUSES = ("pending", "running")  # what Redis knows of a job now
ENDED_STATUSES = ("completed", "failed", "cancelled")  # how jobs ended, counted as they end


@dataclass(frozen=True)
class LiveState:
    """What Redis says now."""

    queued: list[str]  # job ids in the queue
    running: set[str]  # job ids whose worker is beating
    active: set[str]  # job ids pending or running (each holds its user's slot)
    workers: dict[str, dict[str, Any]]  # worker id -> its sandbox report
    polling: bool  # arq's health key is fresh: some worker polls the queue
    refusals: dict[str, int]  # admission rule -> requests refused
    rejections: dict[str, int]  # folder rule -> pushes and uploads it rejected
    durations: dict[str, job_durations.Histogram]  # resource class ("": none named) -> run times
    ended: dict[tuple[str, str], int]  # (status, resource class or "") -> jobs that ended so


async def read_live(redis: Redis, queue_name: str) -> LiveState:
    queued = [member.decode() for member in await redis.zrange(queue_name, 0, -1)]
    running = {key.decode().removeprefix(heartbeat_key("")) async for key in redis.scan_iter(match=heartbeat_key("*"))}
    active: set[str] = set()
    async for key in redis.scan_iter(match=active_key("*")):
        active.update(member.decode() for member in await redis.zrange(key, 0, -1))
    workers: dict[str, dict[str, Any]] = {}
    async for key in redis.scan_iter(match=sandbox_key("*")):
        raw = await redis.get(key)
        if raw is not None:
            workers[key.decode().removeprefix(sandbox_key(""))] = json.loads(raw)
    polling = bool(await cast(Awaitable[int], redis.exists(queue_name + HEALTH_CHECK_SUFFIX)))
    ended: dict[tuple[str, str], int] = {}
    for field_name, count in (await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(ENDED_KEY))).items():
        status, _, cls = field_name.decode().partition("|")
        ended[status, cls] = int(count)
    return LiveState(queued, running, active, workers, polling, await refusals(redis), await rejections.read(redis),
                     await job_durations.read(redis), ended)


async def collect(service: Service) -> list[Family]:
    """Every family GET /metrics answers with, in a fixed order."""
    state = service.dependencies.state
    default = service.settings.resource_classes.default
    made = await service.read_index(service.job_index.count_by_class)
    families = [
        Family("leadersboard_redis_up", "gauge", "Whether Redis answers (0: the Redis series are left out)."),
        Family("leadersboard_mlflow_up", "gauge", "Whether the MLflow tracking server answers.").add(state.mlflow),
        _per_class(Family("leadersboard_jobs_created_total", "counter", "Jobs made, per resource class."),
                   {cls or default: n for cls, n in made.items()}, service.settings.resource_classes.names),
    ]
    live = None
    if state.redis:
        try:
            live = await read_live(service.redis, service.settings.queue_name)
        except Exception:  # too slow or gone since the last check: said as down, never as an error
            live = None
    families[0].add(live is not None)
    if live is not None:
        families += await _live_families(service, live, default)
    return families


async def _live_families(service: Service, live: LiveState, default: str) -> list[Family]:
    ids = sorted(set(live.queued) | live.active | live.running)
    classes = await service.read_index(service.job_index.classes, ids)  # only this instance's jobs
    names = service.settings.resource_classes.names
    jobs = Family("leadersboard_jobs", "gauge", "Jobs pending or running now, per resource class "
                  "(finished jobs are counted in MLflow, not here).")
    for status in STATUSES:
        ids_now = live.running if status == "running" else live.active - live.running
        _per_class(jobs, _count(ids_now, classes, default), names, status=status)
    ended = Family("leadersboard_jobs_ended_total", "counter", "Jobs that ended, per status and resource class.")
    for status in ENDED_STATUSES:
        counts: dict[str, int] = {}
        for (found, cls), count in live.ended.items():
            if found == status:
                counts[cls or default] = counts.get(cls or default, 0) + count
        _per_class(ended, counts, names, status=status)
    now = time.time()
    ages = Family("leadersboard_worker_heartbeat_age_seconds", "gauge",
                  "Seconds since each live worker last reported (workers report every 10 s).")
    for worker, report in sorted(live.workers.items()):
        reported = report.get(SANDBOX_REPORTED_AT)
        if isinstance(reported, int | float):
            ages.add(max(0.0, round(now - reported, 3)), worker=worker)
    refused = Family("leadersboard_admission_refusals_total", "counter", "Requests admission refused, per rule.")
    for rule in sorted({*RULES, *live.refusals}):
        refused.add(live.refusals.get(rule, 0), reason=rule)
    rejected = Family("leadersboard_submissions_rejected_total", "counter",
                      "Pushes and uploads the rules rejected, per rule broken (one under each rule it broke).")
    for rule, times in live.rejections.items():
        rejected.add(times, rule=rule)
    return [
        jobs,
        ended,
        Family("leadersboard_queue_depth", "gauge", "Entries in the job queue (every instance on this Redis).")
        .add(len(live.queued)),
        _per_class(Family("leadersboard_queue_jobs", "gauge", "This instance's queued jobs, per resource class."),
                   _count(live.queued, classes, default), names),
        Family("leadersboard_workers", "gauge", "Live workers (their reports in Redis are fresh).")
        .add(len(live.workers)),
        Family("leadersboard_workers_polling", "gauge", "Whether some worker polls the queue (arq's health key).")
        .add(live.polling),
        ages,
        refused,
        rejected,
        _durations(live.durations, names, default),
    ]


def _durations(found: dict[str, job_durations.Histogram], names: list[str], default: str) -> Family:
    family = Family("leadersboard_job_duration_seconds", "histogram",
                    "Run time of the jobs that ended on a worker, per resource class.")
    merged: dict[str, job_durations.Histogram] = {}
    for cls, histogram in found.items():  # a job that named no class ran in the default one
        into = merged.setdefault(cls or default, job_durations.Histogram())
        for bound, count in histogram.buckets.items():
            into.buckets[bound] += count
        into.sum += histogram.sum
        into.count += histogram.count
    for cls in [*names, *sorted(set(merged) - set(names))]:
        histogram = merged.get(cls, job_durations.Histogram())
        for bound, count in histogram.buckets.items():
            family.add(count, "_bucket", resource_class=cls, le=number(bound))
        family.add(histogram.sum, "_sum", resource_class=cls).add(histogram.count, "_count", resource_class=cls)
    return family


def _count(job_ids: Any, classes: dict[str, str | None], default: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job_id in job_ids:
        if job_id in classes:
            name = classes[job_id] or default
            counts[name] = counts.get(name, 0) + 1
    return counts


def _per_class(family: Family, counts: dict[str, int], names: list[str], **labels: str) -> Family:
    """A sample for every class the instance offers (0 when none), and for any other a job was made with."""
    for name in [*names, *sorted(set(counts) - set(names))]:
        family.add(counts.get(name, 0), resource_class=name, **labels)
    return family
