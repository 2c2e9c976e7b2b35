"""What jobs leave on a worker's host when their worker dies: processes, control groups, scratch folders
and (docker executor) containers, each named by the job's id. `serve`'s reconciler removes those of
ended jobs on the server's host; a worker that joined by URL removes those on its own host
(`sweep_joined_host`), since the server cannot reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from dataclasses import dataclass, field

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from leadersboard.settings import Settings

from . import scratch as scratch_folder
from .cgroups import CgroupError, CgroupTree
from .containers import DockerError, instance_containers, instance_label, remove_containers
from .processes import kill_job_processes

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"[0-9a-f]{32}")  # what else is in the scratch folder or a cgroup (a worker's probe) is not ours


@dataclass
class HostLeftovers:
    """What jobs have on this host besides processes: control groups and scratch folders (by job id)."""

    cgroups: CgroupTree | None = None
    cgroup_jobs: set[str] = field(default_factory=set)
    scratch_jobs: set[str] = field(default_factory=set)

    @classmethod
    def find(cls, settings: Settings) -> HostLeftovers:
        """Listed before the jobs are read: a group or folder made meanwhile belongs to a job seen active."""
        found = cls()
        with contextlib.suppress(OSError):
            found.scratch_jobs = {e.name for e in settings.scratch_dir.iterdir() if JOB_ID.fullmatch(e.name)}
        if os.geteuid() == 0:
            with contextlib.suppress(CgroupError):
                found.cgroups = CgroupTree.find(instance_label(settings.home))
                found.cgroup_jobs = {name for name in found.cgroups.job_ids() if JOB_ID.fullmatch(name)}
        return found

    @property
    def job_ids(self) -> set[str]:
        return self.cgroup_jobs | self.scratch_jobs

    def remove(self, settings: Settings, job_id: str) -> None:
        """The job's control group (killing what still runs in it) and its scratch folder."""
        if self.cgroups is not None:
            try:
                self.cgroups.job(job_id).destroy()
            except CgroupError as exc:
                log.warning("job %s: %s", job_id, exc)
        try:
            scratch_folder.remove(settings.scratch_dir / job_id)
        except OSError as exc:
            log.warning("job %s: cannot remove its scratch folder: %s", job_id, exc)


def host_containers(settings: Settings) -> dict[str, str]:
    """This instance's containers on this host (container id -> job id); none when the engine is away."""
    try:
        return instance_containers(instance_label(settings.home))
    except DockerError as exc:
        log.warning("cannot list this instance's containers: %s", exc)
        return {}


def remove_stale_containers(ids: list[str]) -> None:
    """Containers whose job has ended: its worker could not remove them (it died, say)."""
    if not ids:
        return
    try:
        remove_containers(ids)
    except DockerError as exc:
        log.warning("could not remove containers of ended jobs: %s", exc)
        return
    log.info("removed %d container(s) of ended jobs", len(ids))


async def sweep_joined_host(settings: Settings, redis: Redis, running_here: set[str]) -> int:
    """On a host that joined by URL: remove what jobs that no worker runs any more left here (a worker of
    this host that died, say). A job still runs while a worker holds arq's claim on it (its in-progress
    key), here or elsewhere; `running_here` are this worker's own. Returns how many jobs' leftovers went."""
    def listed() -> tuple[dict[str, str], HostLeftovers]:
        return (host_containers(settings) if settings.runner.executor == "docker" else {}), HostLeftovers.find(settings)

    containers, leftovers = await asyncio.to_thread(listed)
    ids = sorted((leftovers.job_ids | set(containers.values())) - running_here)
    if not ids:
        return 0
    claims = await redis.mget([in_progress_key_prefix + job_id for job_id in ids])
    ended = sorted(job_id for job_id, claim in zip(ids, claims, strict=True) if claim is None)

    def remove() -> None:
        remove_stale_containers(sorted(c for c, job_id in containers.items() if job_id in ended))
        for job_id in ended:
            kill_job_processes(job_id)  # an unconfined job's processes outlive their worker
            leftovers.remove(settings, job_id)
            log.info("removed what ended job %s left on this host", job_id)

    await asyncio.to_thread(remove)
    return len(ended)
