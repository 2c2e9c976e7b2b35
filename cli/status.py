"""`leadersboard status`: the platform at a glance for the operator on a host that reaches its Redis:
live workers, the queue, running and pending jobs, admission's refusals, the rules' rejections. The
same reading of Redis as GET /metrics (`webhook/platform_metrics.py`), printed for a person."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
from redis.asyncio import Redis

from leadersboard.contract import SANDBOX_GPUS, SANDBOX_REPORTED_AT
from leadersboard.job_index import JobIndex
from leadersboard.settings import Settings
from leadersboard.webhook.platform_metrics import LiveState, read_live

from .common import home_option, load_instance

REDIS_TIMEOUT = 2.0  # seconds: a dead Redis is said at once, never waited for


@click.command()
@home_option
def status(home: Path | None) -> None:
    """Workers, GPUs, the queue and running jobs (reads Redis: server.redis_url or LEADERSBOARD_REDIS_URL)."""
    settings = load_instance(home)
    if not settings.redis_url:
        raise click.ClickException(
            "no Redis is configured (serve's own Redis is private to it): set server.redis_url or "
            "LEADERSBOARD_REDIS_URL, or scrape GET /metrics with an admin's token")
    try:
        live = asyncio.run(_read(settings.redis_url, settings.queue_name))
    except Exception as exc:  # any failure to answer in time: said, not a traceback
        raise click.ClickException(f"Redis does not answer ({type(exc).__name__})") from exc
    for line in report(live, JobIndex(settings.db_path), settings, time.time()):
        click.echo(line)


async def _read(url: str, queue_name: str) -> LiveState:
    redis = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    try:
        return await read_live(redis, queue_name)
    finally:
        await redis.aclose()


def report(live: LiveState, index: JobIndex, settings: Settings, now: float) -> list[str]:
    """The lines `status` prints."""
    default = settings.resource_classes.default
    lines = [f"workers: {len(live.workers)} live" + ("" if live.polling or not live.workers else
                                                     " (none polls the queue)")]
    for worker, info in sorted(live.workers.items()):
        reported = info.get(SANDBOX_REPORTED_AT)
        age = f", reported {now - reported:.0f} s ago" if isinstance(reported, int | float) else ""
        lines.append(f"  {worker}: {info.get('executor')} executor, {info.get('level')}, "
                     f"{info.get(SANDBOX_GPUS, 0)} GPU(s){age}")
    classes = index.classes(live.queued)
    per_class: dict[str, int] = {}
    for job_id in live.queued:
        if job_id in classes:
            per_class[classes[job_id] or default] = per_class.get(classes[job_id] or default, 0) + 1
    shown = ", ".join(f"{name} {per_class.get(name, 0)}" for name in settings.resource_classes.names)
    lines.append(f"queue: {len(live.queued)} queued ({shown})")
    for title, ids in (("running", live.running), ("pending", live.active - live.running)):
        lines.append(f"{title}: {len(ids)}")
        for job_id in sorted(ids):
            record = index.by_job(job_id) or index.awaiting(job_id)
            if record is not None:
                lines.append(f"  {job_id}  {record.user}  {record.resource_class or default}  {record.benchmark}")
    lines.append("refusals: " + ", ".join(f"{rule} {count}" for rule, count in sorted(live.refusals.items()))
                 if live.refusals else "refusals: none")
    lines.append("rejected by the rules: " + ", ".join(f"{rule} {count}" for rule, count in live.rejections.items())
                 if live.rejections else "rejected by the rules: none")
    return lines
