"""Finding a job's containers on this host by the label the docker executor gives them.

The worker removes its job's container when the job ends, whatever the end; this finds one that a
dead worker left behind, so that the reconciler can remove it (the container counterpart of
`processes.kill_job_processes`).
"""

from __future__ import annotations

import subprocess

DOCKER = "docker"
JOB_LABEL = "leadersboard.job"
DOCKER_CALL_SECONDS = 60


class DockerError(Exception):
    """A docker command failed; the message holds the command and what docker said."""


def container_name(job_id: str) -> str:
    """The name of a job's container: one job, at most one container."""
    return f"leadersboard-job-{job_id}"


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


def remove_job_containers(job_id: str) -> int:
    """Kill and remove every container of the job on this host; how many there were."""
    ids = job_containers(job_id)
    if ids:
        docker("rm", "--force", *ids)
    return len(ids)
