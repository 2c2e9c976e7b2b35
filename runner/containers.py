"""Finding a job's containers on this host by the labels the docker executor gives them.

The worker removes its job's container when the job ends, whatever the end; this finds one that a
dead worker (or anything else) left behind, so that the reconciler can remove it: by its job when
that job's worker is gone (the container counterpart of `processes.kill_job_processes`), and by
the instance, in a sweep of every container whose job is no longer active.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

DOCKER = "docker"
JOB_LABEL = "leadersboard.job"
INSTANCE_LABEL = "leadersboard.instance"  # instances may share a Docker engine: each sweeps its own
DOCKER_CALL_SECONDS = 60


class DockerError(Exception):
    """A docker command failed; the message holds the command and what docker said."""


def container_name(job_id: str) -> str:
    """The name of a job's container: one job, at most one container."""
    return f"leadersboard-job-{job_id}"


def instance_label(home: Path) -> str:
    """The value of the instance label: a digest of the instance folder."""
    return hashlib.sha256(str(home).encode()).hexdigest()[:16]


def docker(*args: str, timeout: float = DOCKER_CALL_SECONDS) -> str:
    """Run `docker ARGS` and return its standard output; DockerError when it fails."""
    try:
        result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerError(f"docker {args[0] if args else ''}: {exc}") from exc
    if result.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:2])} exited {result.returncode}: "
                          f"{result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def job_containers(job_id: str) -> list[str]:
    """Ids of the containers (running or not) labelled with this job."""
    return docker("ps", "--all", "--quiet", "--no-trunc", "--filter", f"label={JOB_LABEL}={job_id}").split()


def instance_containers(instance: str) -> dict[str, str]:
    """Every container (running or not) of the instance: container id -> job id."""
    out = docker("ps", "--all", "--no-trunc", "--filter", f"label={INSTANCE_LABEL}={instance}",
                 "--format", f'{{{{.ID}}}} {{{{.Label "{JOB_LABEL}"}}}}')
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def remove_containers(ids: list[str]) -> None:
    if ids:
        docker("rm", "--force", *ids)


def remove_job_containers(job_id: str) -> int:
    """Kill and remove every container of the job on this host; how many there were."""
    ids = job_containers(job_id)
    remove_containers(ids)
    return len(ids)
