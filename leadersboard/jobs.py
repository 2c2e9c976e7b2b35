"""Jobs: one evaluation of one submission.

A job *is* an MLflow run, created at admission with status SCHEDULED in the benchmark's experiment,
so it survives the loss of Redis or of a worker; Redis only holds the queue. The instance database
keeps an index (job id -> run id, user) so that the API finds a job without a search; a worker on
another host needs only MLflow and the run id its queue entry carries.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mlflow.entities import Run, RunData, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from . import contract as c
from . import db
from .admission import Admission
from .submissions import Submission


class JobStatus(StrEnum):
    """A job's status, as the API, the site and the job's run (tag `leadersboard.status`) say it."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Pending or running: the job holds one of its user's slots."""
        return self in (JobStatus.PENDING, JobStatus.RUNNING)

    @property
    def run_status(self) -> str:
        """The MLflow run status that goes with it."""
        return _RUN_STATUS[self]

    @classmethod
    def of(cls, text: str | None) -> JobStatus:
        """The status a tag holds; a run without one is pending (it was just created)."""
        try:
            return cls(text or cls.PENDING)
        except ValueError:
            return cls.FAILED  # not a status we wrote: never counted as active


_RUN_STATUS = {JobStatus.PENDING: "SCHEDULED", JobStatus.RUNNING: "RUNNING", JobStatus.COMPLETED: "FINISHED",
               JobStatus.FAILED: "FAILED", JobStatus.CANCELLED: "KILLED"}
ACTIVE_STATUSES = tuple(status for status in JobStatus if status.active)


@dataclass
class Job:
    id: str
    run_id: str
    status: JobStatus
    user: str
    benchmark: str
    submission_id: str
    folder: str
    commit: str
    entrypoint: str
    config_file: str
    resource_class: str | None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    worker: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return self.benchmark.split("/", 1)[0]

    def status_document(self) -> dict[str, Any]:
        """The shape `GET /jobs/{id}/status` answers with (DESIGN.md)."""
        return {
            "job_id": self.id, "submission_id": self.submission_id, "status": self.status,
            "benchmark": self.benchmark, "created_at": _iso(self.created_at), "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at), "metrics": self.metrics, "error": self.error,
            "user": self.user, "submission": self.folder, "commit": self.commit,
        }


class JobStore:
    """Jobs in MLflow, with the instance's index when `db_path` is given; with `admission`, a job
    that ends gives its user's slot back (`end`)."""

    def __init__(self, tracking_uri: str, db_path: Path | None = None, admission: Admission | None = None) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.db_path = db_path
        self.admission = admission
        self._experiments: dict[str, str] = {}

    def create(self, sub: Submission, job_id: str, fresh: bool = False) -> Job:
        """The job `job_id` for `sub`, created once: a replayed event finds the existing one.

        `fresh` (the first hand-over of a just-admitted submission) trusts the index alone and skips
        the slower search in MLflow.
        """
        existing = self._indexed_run(job_id) if fresh else None
        found = self.read(existing) if existing else (None if fresh else self.find(job_id))
        if found is not None:
            return found
        tags = {
            c.TAG_JOB_ID: job_id, c.TAG_STATUS: JobStatus.PENDING, c.TAG_USER: sub.user,
            c.TAG_SUBMISSION_ID: sub.id, c.TAG_FOLDER: sub.folder, c.TAG_COMMIT: sub.commit_id,
            c.TAG_GIT_COMMIT: sub.commit_id, c.TAG_BENCHMARK: sub.benchmark,
            c.TAG_SUBMITTED_AT: f"{sub.created_at:.3f}", c.TAG_ENTRYPOINT: sub.entrypoint,
            c.TAG_CONFIG: sub.config_file, "mlflow.user": sub.user,
        }
        if sub.resource_class:
            tags[c.TAG_RESOURCE_CLASS] = sub.resource_class
        method = sub.metadata.get("method")
        if isinstance(method, str):
            tags[c.TAG_METHOD] = method
        run = self.client.create_run(self.experiment_id(sub.benchmark), start_time=int(sub.created_at * 1000),
                                     tags=tags, run_name=f"{sub.user}/{sub.folder}")
        self.client.update_run(run.info.run_id, status=JobStatus.PENDING.run_status)
        job = job_from_run(Run(run.info, RunData(tags=[RunTag(k, v) for k, v in tags.items()])))
        self._index(job)
        return job

    def experiment_id(self, benchmark: str) -> str:
        if benchmark not in self._experiments:
            found = self.client.get_experiment_by_name(benchmark)
            if found is None:
                try:
                    self._experiments[benchmark] = self.client.create_experiment(
                        benchmark, tags={c.EXPERIMENT_TAG: benchmark})
                except MlflowException:  # created meanwhile by another process
                    found = self.client.get_experiment_by_name(benchmark)
                    if found is None:
                        raise
            if found is not None:
                self._experiments[benchmark] = found.experiment_id
        return self._experiments[benchmark]

    def find(self, job_id: str) -> Job | None:
        run_id = self._indexed_run(job_id)
        if run_id is not None:
            return self.read(run_id)
        runs = self.search(f"tags.`{c.TAG_JOB_ID}` = '{job_id}'", max_results=1)
        if runs:
            self._index(runs[0])
        return runs[0] if runs else None

    def read(self, run_id: str) -> Job:
        return job_from_run(self.client.get_run(run_id))

    def for_user(self, user: str) -> list[Job]:
        """The user's jobs, newest first."""
        return self.search(f"tags.`{c.TAG_USER}` = '{user}'")

    def with_status(self, *statuses: JobStatus) -> list[Job]:
        # MLflow's filter has no IN for tags: one search per status (few jobs are ever active).
        return [job for status in statuses for job in self.search(f"tags.`{c.TAG_STATUS}` = '{status}'")]

    def search(self, filter_string: str, max_results: int | None = None) -> list[Job]:
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        if not experiments:
            return []
        jobs: list[Job] = []
        token = None
        while True:
            page = self.client.search_runs(experiments, filter_string, max_results=max_results or 1000,
                                           order_by=["attributes.start_time DESC"], page_token=token)
            jobs += [job_from_run(r) for r in page if c.TAG_JOB_ID in r.data.tags]
            token = page.token
            if not token or (max_results and len(jobs) >= max_results):
                return jobs

    def mark_running(self, run_id: str, worker: str) -> None:
        self.client.update_run(run_id, status=JobStatus.RUNNING.run_status)
        # The status last: whoever reads "running" also finds the worker and the start time (without
        # them the reconciler would take the job for one whose worker has long stopped beating).
        for key, value in ((c.TAG_WORKER, worker), (c.TAG_STARTED_AT, f"{time.time():.3f}"),
                           (c.TAG_STATUS, JobStatus.RUNNING)):
            self.client.set_tag(run_id, key, value)

    async def end(self, job: Job, status: JobStatus, reason: str | None = None) -> None:
        """The one way a job ends, whoever ends it (its worker, a cancel, the reconciler): the reason
        when it did not complete, the run's end state, the final status; then its user's slot back."""
        assert not status.active, status
        await asyncio.to_thread(self._write_end, job.run_id, status, reason)
        if self.admission is not None:
            await self.admission.release(job.user, [], [job.id])

    def _write_end(self, run_id: str, status: JobStatus, reason: str | None) -> None:
        if reason:
            self.client.set_tag(run_id, c.TAG_ERROR, reason[:4000])
        self.client.set_terminated(run_id, status=status.run_status)
        # Last: whoever reads the final status also finds the end time and the reason.
        self.client.set_tag(run_id, c.TAG_STATUS, status)

    def run_owner(self, run_id: str) -> str | None:
        """Who submitted the job whose run is `run_id`, by the instance's index (never by a tag)."""
        if self.db_path is None:
            return None
        with db.connect(self.db_path) as conn:
            row = conn.execute("SELECT user FROM jobs WHERE run_id = ?", (run_id,)).fetchone()
        return str(row["user"]) if row else None

    def _indexed_run(self, job_id: str) -> str | None:
        if self.db_path is None:
            return None
        with db.connect(self.db_path) as conn:
            row = conn.execute("SELECT run_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return str(row["run_id"]) if row else None

    def _index(self, job: Job) -> None:
        if self.db_path is None:
            return
        with db.connect(self.db_path) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO jobs (id, run_id, submission_id, user, benchmark, resource_class, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.run_id, job.submission_id, job.user, job.benchmark, job.resource_class, job.created_at))


def job_from_run(run: Run) -> Job:
    tags = run.data.tags
    status = JobStatus.of(tags.get(c.TAG_STATUS))
    started = tags.get(c.TAG_STARTED_AT)
    finished = run.info.end_time / 1000 if run.info.end_time and not status.active else None
    return Job(
        id=tags.get(c.TAG_JOB_ID, ""), run_id=run.info.run_id, status=status, user=tags.get(c.TAG_USER, ""),
        benchmark=tags.get(c.TAG_BENCHMARK, ""), submission_id=tags.get(c.TAG_SUBMISSION_ID, ""),
        folder=tags.get(c.TAG_FOLDER, ""), commit=tags.get(c.TAG_COMMIT, ""),
        entrypoint=tags.get(c.TAG_ENTRYPOINT, "main.py"), config_file=tags.get(c.TAG_CONFIG, "config.yaml"),
        resource_class=tags.get(c.TAG_RESOURCE_CLASS), created_at=float(tags.get(c.TAG_SUBMITTED_AT, 0)),
        started_at=float(started) if started else None, finished_at=finished, error=tags.get(c.TAG_ERROR),
        worker=tags.get(c.TAG_WORKER), metrics=dict(run.data.metrics),
    )


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
