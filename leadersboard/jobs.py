"""Jobs: one evaluation of one submission.

A job *is* an MLflow run, created at admission with status SCHEDULED in the benchmark's experiment,
so it survives the loss of Redis or of a worker; Redis only holds the queue. The instance database
keeps the platform's record of each job (`job_index`): with it, a job's owner and benchmark come from
that record, never from the run's tags; a worker on another host needs only MLflow and the run id its
queue entry carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from mlflow.entities import Run, RunData, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from redis.exceptions import RedisError

from . import contract as c
from .admission import Admission
from .job_index import JobIndex, JobRecord
from .submissions import Submission
from .submissions import job_id as submission_job_id


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
RUNS_PER_SEARCH = 100  # run ids in one `attributes.run_id IN (...)` filter
SLOT_GIVEN_BACK = "the platform's fault: the submission's slot in the hourly limit was given back"


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
    scoring: str = "self_reported"  # how its benchmark is scored: self_reported or verified
    attempts: int = 0  # times a worker started it
    lost: int = 0  # times the worker running it died under it
    dataset_version: str = ""  # its data set's content hash when it was made ("": made before versions)

    @property
    def dataset(self) -> str:
        return self.benchmark.split("/", 1)[0]

    def status_document(self) -> dict[str, Any]:
        """The shape `GET /jobs/{id}/status` answers with (DESIGN.md)."""
        return {
            "job_id": self.id, "submission_id": self.submission_id, "status": self.status,
            "benchmark": self.benchmark, "created_at": _iso(self.created_at), "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at), "metrics": self.metrics, "error": self.error,
            "user": self.user, "submission": self.folder, "commit": self.commit, "scoring": self.scoring,
            "attempts": self.attempts, "resource_class": self.resource_class,
        }


class JobStore:
    """Jobs in MLflow. With `db_path` (the service), the instance's job index is the truth about which
    runs are jobs and whose; without it (a worker), the run's tags, which only the platform writes.
    With `admission`, a job that ends gives its user's slot back (`end`)."""

    def __init__(self, tracking_uri: str, db_path: Path | None = None, admission: Admission | None = None) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.index = JobIndex(db_path) if db_path is not None else None
        self.admission = admission
        self._experiments: dict[str, str] = {}

    def create(self, sub: Submission, job_id: str, fresh: bool = False, scoring: str = "self_reported",
               dataset_version: str = "") -> Job:
        """The job `job_id` for `sub`, created once: a replayed event finds the existing one.

        `fresh` (the first hand-over of a just-admitted submission) trusts the index alone and skips
        the slower search in MLflow for a run a crash kept out of the index. `scoring` is how its
        benchmark is scored and `dataset_version` its data set's content hash, both fixed when the job
        is made (a worker whose copy of the data set differs refuses the job).
        """
        found = self._made(job_id)
        if found is None and not fresh:
            found = self._unindexed(sub, job_id)
        if found is not None:
            return found
        tags = {
            c.TAG_JOB_ID: job_id, c.TAG_STATUS: JobStatus.PENDING, c.TAG_USER: sub.user,
            c.TAG_SUBMISSION_ID: sub.id, c.TAG_FOLDER: sub.folder, c.TAG_COMMIT: sub.commit_id,
            c.TAG_GIT_COMMIT: sub.commit_id, c.TAG_BENCHMARK: sub.benchmark,
            c.TAG_SUBMITTED_AT: f"{sub.created_at:.3f}", c.TAG_ENTRYPOINT: sub.entrypoint,
            c.TAG_CONFIG: sub.config_file, "mlflow.user": sub.user, c.TAG_SCORING: scoring,
        }
        if sub.resource_class:
            tags[c.TAG_RESOURCE_CLASS] = sub.resource_class
        if dataset_version:
            tags[c.TAG_DATASET_VERSION] = dataset_version
        method = sub.metadata.get("method")
        if isinstance(method, str):
            tags[c.TAG_METHOD] = method
        run = self.client.create_run(self.experiment_id(sub.benchmark), start_time=int(sub.created_at * 1000),
                                     tags=tags, run_name=f"{sub.user}/{sub.folder}")
        self.client.update_run(run.info.run_id, status=JobStatus.PENDING.run_status)
        job = job_from_run(Run(run.info, RunData(tags=[RunTag(k, v) for k, v in tags.items()])))
        self._index(job)
        return job

    def _unindexed(self, sub: Submission, job_id: str) -> Job | None:
        """The run made for `job_id` before a crash kept it out of the index: indexed now."""
        runs = self.search(f"tags.`{c.TAG_JOB_ID}` = '{job_id}'", max_results=1)
        if not runs or runs[0].submission_id != sub.id:
            return None
        self._index(replace(runs[0], user=sub.user, benchmark=sub.benchmark))  # who and what: as admitted
        return self.read(runs[0].run_id)

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
        """The job `job_id`; with the index, only a job the platform recorded, or admitted and is
        making right now (pending, without a run yet)."""
        made = self._made(job_id)
        if made is not None or self.index is None:
            return made
        awaiting = self.index.awaiting(job_id)
        return _awaiting(awaiting) if awaiting else None

    def _made(self, job_id: str) -> Job | None:
        """The job `job_id` once its run exists."""
        if self.index is not None:
            record = self.index.by_job(job_id)
            return _with_record(job_from_run(self.client.get_run(record.run_id)), record) if record else None
        runs = self.search(f"tags.`{c.TAG_JOB_ID}` = '{job_id}'", max_results=1)
        return runs[0] if runs else None

    def read(self, run_id: str) -> Job:
        job = job_from_run(self.client.get_run(run_id))
        record = self.index.by_run(run_id) if self.index is not None else None
        return _with_record(job, record) if record else job

    def for_user(self, user: str) -> list[Job]:
        """The user's jobs, newest first (with the index: the jobs the platform made for them)."""
        if self.index is None:
            return self.search(f"tags.`{c.TAG_USER}` = '{user}'")
        records = self.index.of_user(user)
        runs: dict[str, Run] = {}
        for start in range(0, len(records), RUNS_PER_SEARCH):
            ids = ", ".join(f"'{r.run_id}'" for r in records[start:start + RUNS_PER_SEARCH])
            runs.update((run.info.run_id, run) for run in self._search_runs(f"attributes.run_id IN ({ids})"))
        return [_with_record(job_from_run(runs[r.run_id]), r) for r in records if r.run_id in runs]

    def with_status(self, *statuses: JobStatus) -> list[Job]:
        """Jobs in these statuses (with the index: only runs that are jobs the platform made)."""
        # MLflow's filter has no IN for tags: one search per status (few jobs are ever active).
        jobs = [job for status in statuses for job in self.search(f"tags.`{c.TAG_STATUS}` = '{status}'")]
        if self.index is None:
            return jobs
        records = self.index.by_runs([job.run_id for job in jobs])
        return [_with_record(job, records[job.run_id]) for job in jobs if job.run_id in records]

    def search(self, filter_string: str, max_results: int | None = None) -> list[Job]:
        """Job runs matching an MLflow filter, as their tags say (the index is not consulted)."""
        return [job_from_run(r) for r in self._search_runs(filter_string, max_results) if c.TAG_JOB_ID in r.data.tags]

    def _search_runs(self, filter_string: str, max_results: int | None = None) -> list[Run]:
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        if not experiments:
            return []
        runs: list[Run] = []
        token = None
        while True:
            page = self.client.search_runs(experiments, filter_string, max_results=max_results or 1000,
                                           order_by=["attributes.start_time DESC"], page_token=token)
            runs += list(page)
            token = page.token
            if not token or (max_results and len(runs) >= max_results):
                return runs

    def mark_running(self, job: Job, worker: str) -> None:
        """The job starts on `worker`: one more attempt."""
        self.client.update_run(job.run_id, status=JobStatus.RUNNING.run_status)
        # The status last: whoever reads "running" also finds the worker and the start time (without
        # them the reconciler would take the job for one whose worker has long stopped beating).
        for key, value in ((c.TAG_ATTEMPTS, str(job.attempts + 1)), (c.TAG_WORKER, worker),
                           (c.TAG_STARTED_AT, f"{time.time():.3f}"), (c.TAG_STATUS, JobStatus.RUNNING)):
            self.client.set_tag(job.run_id, key, value)

    def hand_back(self, job: Job, why: str, lost: bool = False) -> None:
        """The running job goes back to pending, to run again from the start: the platform stopped it
        (`lost`: its worker died), not its code. Its slot stays taken; the caller queues it again."""
        tags = {c.TAG_HANDED_BACK: why[:4000], **({c.TAG_LOST: str(job.lost + 1)} if lost else {})}
        for key, value in tags.items():
            self.client.set_tag(job.run_id, key, value)
        self.client.update_run(job.run_id, status=JobStatus.PENDING.run_status)
        self.client.set_tag(job.run_id, c.TAG_STATUS, JobStatus.PENDING)  # last, as in `mark_running`

    async def end(self, job: Job, status: JobStatus, reason: str | None = None, platform_fault: bool = False) -> None:
        """The one way a job ends, whoever ends it (its worker, a cancel, the reconciler): the reason
        when it did not complete, the run's end state, the final status; then its user's slot back.

        `platform_fault`: it failed for the platform's reason, not its code's; the submission's slot
        in the hourly limit is given back too (when this job is the one that spent it), and the
        reason says so."""
        assert not status.active, status
        refund = platform_fault and job.id == submission_job_id(job.submission_id)
        if refund and self.admission is not None:
            reason = f"{reason}; {SLOT_GIVEN_BACK}" if reason else SLOT_GIVEN_BACK
        await asyncio.to_thread(self._write_end, job.run_id, status, reason)
        if self.admission is not None:
            await self.admission.release(job.user, [job.submission_id] if refund else [], [job.id])
            with contextlib.suppress(RedisError):  # for GET /metrics only: never a reason to fail the ending
                await cast(Awaitable[int], self.admission.redis.hincrby(c.ENDED_KEY,
                                                                        f"{status}|{job.resource_class or ''}", 1))

    def _write_end(self, run_id: str, status: JobStatus, reason: str | None) -> None:
        if reason:
            self.client.set_tag(run_id, c.TAG_ERROR, reason[:4000])
        self.client.set_terminated(run_id, status=status.run_status)
        # Last: whoever reads the final status also finds the end time and the reason.
        self.client.set_tag(run_id, c.TAG_STATUS, status)

    def run_owner(self, run_id: str) -> str | None:
        """Who submitted the job whose run is `run_id`, by the instance's index (never by a tag)."""
        record = self.index.by_run(run_id) if self.index is not None else None
        return record.user if record else None

    def _index(self, job: Job) -> None:
        if self.index is not None:
            self.index.add(job.id, job.run_id, job.submission_id, job.user, job.benchmark, job.resource_class,
                           job.created_at, job.scoring)


def _with_record(job: Job, record: JobRecord) -> Job:
    """The job with who, what and where as the platform recorded them (its run's tags may say otherwise)."""
    return replace(job, id=record.job_id, user=record.user, benchmark=record.benchmark,
                   submission_id=record.submission_id, folder=record.folder, commit=record.commit,
                   entrypoint=record.entrypoint, config_file=record.config_file,
                   resource_class=record.resource_class, created_at=record.created_at, scoring=record.scoring)


def _awaiting(record: JobRecord) -> Job:
    """A job admitted but not made yet: pending, with no run."""
    return Job(id=record.job_id, run_id="", status=JobStatus.PENDING, user=record.user, benchmark=record.benchmark,
               submission_id=record.submission_id, folder=record.folder, commit=record.commit,
               entrypoint=record.entrypoint, config_file=record.config_file, resource_class=record.resource_class,
               created_at=record.created_at, scoring=record.scoring)


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
        # A job handed back keeps the tags of its last start until it starts again: pending has none.
        started_at=float(started) if started and status != JobStatus.PENDING else None, finished_at=finished,
        error=tags.get(c.TAG_ERROR), worker=tags.get(c.TAG_WORKER), metrics=dict(run.data.metrics),
        scoring=tags.get(c.TAG_SCORING, "self_reported"), attempts=_count(tags.get(c.TAG_ATTEMPTS)),
        lost=_count(tags.get(c.TAG_LOST)), dataset_version=tags.get(c.TAG_DATASET_VERSION, ""),
    )


def _count(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
