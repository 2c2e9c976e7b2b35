"""One job, from queue entry to final status: checkout, sandboxed run, results into MLflow.

Errors are caught once, here at the job boundary, and become the job's status and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from mlflow.entities import Metric, RunTag
from redis.asyncio import Redis
from redis.exceptions import RedisError

from leadersboard import contract as c
from leadersboard import job_durations, model_cache
from leadersboard.dataset_layouts import LayoutError
from leadersboard.datasets import Dataset
from leadersboard.jobs import Job, JobStatus, JobStore
from leadersboard.resource_classes import JobSize
from leadersboard.settings import Settings

from . import entry_launcher, working_config
from . import scratch as scratch_folder
from .checkout import CheckoutError, checkout_folder
from .failure_reason import read_failure
from .livelog import LiveLog
from .local_store import CopyLimits, CopyRefused
from .processes import JOB_ENV
from .remote import CodeCache, FetchError
from .results import ArtifactScope, CopyReport, copy_local_runs
from .sandbox import (
    MODEL_CACHE_DIR,
    UNCONFINED,
    WORK_DIR,
    Confinement,
    Outcome,
    OutputSink,
    Sandbox,
    SandboxError,
    View,
)
from .sealed import SealError
from .untrusted import PredictionsError
from .verified import PREDICTIONS_FILE, TEST_MOUNT, TRAIN_MOUNT, VerifiedRun
from .verified import prepare as prepare_verified

log = logging.getLogger(__name__)

STORE_FILE = "mlflow.db"  # the submission's local MLflow store, in its scratch folder
LOG_TAIL_BYTES = 64 * 1024  # where the failure is looked for: a deep traceback fits


class Executor(Protocol):
    name: str
    isolates_network: bool
    confinement: Confinement
    scratch_size: int | None  # bytes; None: the scratch folder is a plain folder of the host


    def view(self, scratch: Path, gpu: str | None) -> View: ...

    async def run(self, sandbox: Sandbox, on_output: OutputSink) -> Outcome: ...


class JobFailed(Exception):
    """The job cannot run or did not produce a result; the message is shown to the participant."""


class PlatformFailed(JobFailed):
    """The job cannot run for the platform's reason, not its code's: its hourly slot is given back."""


HANDED_BACK = "the platform stopped while the job ran; it runs again from the start"


@dataclass(frozen=True)
class Ending:
    """How a job ended: its final status, the reason, and whose fault a failure was."""

    status: JobStatus
    error: str
    platform_fault: bool = False  # not the job's code's: its hourly slot is given back


@dataclass
class WorkerContext:
    settings: Settings
    redis: Redis
    jobs: JobStore  # gives the user's slot back when a job ends
    executor: Executor
    worker_id: str
    gpu: str | None = None
    on_job_end: Callable[[], Awaitable[None]] | None = None
    # Ids of the jobs arq cancelled because someone asked (`Job.abort`, which the API's cancel calls,
    # records them in Redis; arq reads them there). Any other cancel is the worker stopping.
    aborted: Container[str] = frozenset()
    code: CodeCache | None = None  # a worker on another host: the server's commits, fetched over git
    gpu_present: bool = False  # the host has the device `gpu` names (serve numbers its workers on any host)


async def run_job(ctx: dict[str, Any], job_id: str, run_id: str) -> str:
    """The arq job function: run job `job_id` (MLflow run `run_id`) to its end, or hand it back."""
    w: WorkerContext = ctx["leadersboard"]
    job = await asyncio.to_thread(w.jobs.read, run_id)
    if job.status != JobStatus.PENDING:  # a replayed queue entry: the job ran or ended already
        return f"skipped ({job.status})"
    await asyncio.to_thread(w.jobs.mark_running, job, w.worker_id)
    started = time.monotonic()
    scratch = w.settings.scratch_dir / job_id
    await asyncio.to_thread(scratch_folder.create, scratch, w.executor.scratch_size)
    heartbeat = asyncio.create_task(_beat(w, job_id))
    livelog = LiveLog(w.redis, job_id, scratch / c.LOG_FILE, w.settings.runner.log_max_bytes)
    ending, handed_back = Ending(JobStatus.FAILED, "the job stopped unexpectedly"), False
    try:
        ending = Ending(*await _execute(w, job, scratch, livelog))
    except asyncio.CancelledError:
        if job_id in w.aborted:
            ending = Ending(JobStatus.CANCELLED, "cancelled on request")
        else:  # the worker is stopping (its grace period is over): the job goes back to the queue
            handed_back = True
        raise  # arq keeps the queue entry of a job cancelled without an abort: it runs again
    except PlatformFailed as exc:
        ending = Ending(JobStatus.FAILED, str(exc), platform_fault=True)
    except JobFailed as exc:
        ending = Ending(JobStatus.FAILED, str(exc))
    except SandboxError:
        log.exception("job %s: the sandbox failed", job_id)
        ending = Ending(JobStatus.FAILED, "the sandbox could not run the job; the operators have the details",
                        platform_fault=True)
    except Exception as exc:  # the job boundary: anything else is the platform's fault, said once
        log.exception("job %s: platform error", job_id)
        ending = Ending(JobStatus.FAILED, f"platform error ({type(exc).__name__}); the operators have the details",
                        platform_fault=True)
    finally:
        if handed_back:
            await _to_the_end(_hand_back(w, job, scratch, livelog, heartbeat))
        else:
            await _to_the_end(_finish(w, job, scratch, livelog, ending, heartbeat))
            with contextlib.suppress(RedisError):  # for GET /metrics only: never a reason to fail the job
                await job_durations.observe(w.redis, job.resource_class, time.monotonic() - started)
    return ending.status


async def _to_the_end(step: Awaitable[None]) -> None:
    """Await `step` to its end even when cancelled meanwhile (the worker stopping), then re-raise the cancel."""
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def _execute(w: WorkerContext, job: Job, scratch: Path, livelog: LiveLog) -> tuple[JobStatus, str]:
    settings = w.settings
    work = scratch / WORK_DIR
    await livelog.note(f"job {job.id}: {job.user}/{job.folder} at {job.commit[:12]} on {job.benchmark}")
    _check_dataset_version(settings, job)
    size = _job_size(settings, job)
    gpu = w.gpu if size.gpus else None  # a CPU class's job sees no GPU, whichever worker runs it
    if gpu and w.gpu_present:  # where it ran: the worker tag says the host, this the device
        await asyncio.to_thread(w.jobs.client.set_tag, job.run_id, c.TAG_GPU, gpu)
    try:
        repository = await asyncio.to_thread(w.code.repository_with, job.commit) if w.code else settings.repo_path
    except FetchError as exc:
        raise PlatformFailed(f"this worker host could not fetch the submission from the server: {exc}") from exc
    try:
        await asyncio.to_thread(checkout_folder, repository, job.commit, job.folder, work)
    except CheckoutError as exc:
        raise JobFailed(f"the submission could not be checked out: {exc}") from exc
    await _working_config(w, job, work, livelog)
    view = w.executor.view(scratch, gpu)
    verified = await _verified_run(w, job, livelog) if job.scoring == "verified" else None
    sandbox = _sandbox(settings, job, scratch, view, gpu, verified, size)
    network = "none" if w.executor.isolates_network else "not isolated on this worker"
    await livelog.note(f"sandbox: {w.executor.confinement}")
    await livelog.note(f"running {job.entrypoint} with the {w.executor.name} executor, "
                       f"{size.describe()}, network: {network}")
    outcome = await w.executor.run(sandbox, livelog.write)
    await livelog.note(f"finished in {outcome.runtime_seconds:.1f} s"
                       + (f" with exit code {outcome.exit_code}" if outcome.exit_code is not None else ""))
    await asyncio.to_thread(w.jobs.client.log_metric, job.run_id, c.METRIC_RUNTIME, round(outcome.runtime_seconds, 3))
    try:
        report = await asyncio.to_thread(_copy_results, w, job, scratch, view, verified is not None)
    except CopyRefused as exc:
        raise JobFailed(str(exc)) from exc
    if report.ignored:
        await livelog.note(f"not copied: {', '.join(sorted(report.ignored))} (measured by the platform itself)")
    if outcome.timed_out:
        return JobStatus.FAILED, (f"stopped after the time limit of {size.time_limit_seconds} s; "
                          "make the run shorter (fewer epochs, smaller images)")
    if outcome.exit_code != 0 and outcome.oom_limit is not None:
        return JobStatus.FAILED, (f"out of memory: stopped for using more than the sandbox's {outcome.oom_limit}; "
                          "use less (smaller images or batches, fewer data loader workers)")
    if outcome.exit_code != 0:
        return JobStatus.FAILED, f"{job.entrypoint} exited with code {outcome.exit_code}: {_failure(livelog.path)}"
    if verified is not None:
        return await _score(w, job, verified, scratch / WORK_DIR, livelog)
    if c.METRIC_AUROC not in report.metrics:
        return JobStatus.FAILED, ("no 'auroc' metric was logged; log it with mlflow.log_metric('auroc', value) "
                                  "inside mlflow.start_run()")
    out_of_range = ranked_metric_problem(report.metrics)
    if out_of_range:
        return JobStatus.FAILED, out_of_range
    return JobStatus.COMPLETED, ""


async def _working_config(w: WorkerContext, job: Job, work: Path, livelog: LiveLog) -> None:
    """The config as anomalib will read it, and the metrics the submission asks to be shown (a tag)."""
    config = await asyncio.to_thread(working_config.prepare, work, job.config_file)
    if config.removed:
        await livelog.note(f"{job.config_file}: {' and '.join(config.removed)} are the platform's keys; the job's "
                           "copy is without them, so anomalib's parser accepts it (your committed file is unchanged)")
    if config.metrics:
        await asyncio.to_thread(w.jobs.client.set_tag, job.run_id, c.TAG_SHOWN_METRICS, ",".join(config.metrics))


def ranked_metric_problem(metrics: dict[str, float]) -> str | None:
    """Why a ranked metric cannot be ranked (not a number in [0, 1]), or None."""
    for name in c.RANKED_METRICS:
        value = metrics.get(name)
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            return f"the logged {name} is {value}, outside [0, 1]: log the score itself (a fraction, not a percent)"
    return None


async def _verified_run(w: WorkerContext, job: Job, livelog: LiveLog) -> VerifiedRun:
    """The sealed view a verified job sees; refused where the worker could not keep the labels from it."""
    if w.executor.confinement.level == UNCONFINED:
        raise JobFailed("this benchmark is scored on test labels kept from the job, and this worker cannot keep "
                        "them from it (it runs jobs unconfined); the operators must run it as root or with Docker")
    dataset = _dataset(w.settings, job)
    try:
        run = await asyncio.to_thread(prepare_verified, w.settings.sealed_dir, dataset, job.benchmark.split("/")[1])
    except (SealError, LayoutError, OSError) as exc:
        log.exception("job %s: the sealed view could not be built", job.id)
        raise PlatformFailed(f"the platform could not prepare the test set ({exc}); the operators have the "
                             "details") from exc
    await livelog.note(f"verified benchmark: {len(run.view.test_set())} test images in {TEST_MOUNT}/, "
                       f"training images in {TRAIN_MOUNT}/; write {PREDICTIONS_FILE}")
    return run


async def _score(w: WorkerContext, job: Job, verified: VerifiedRun, work: Path,
                 livelog: LiveLog) -> tuple[JobStatus, str]:
    """The platform's scores of a verified job: its official metrics, or why its predictions fail."""
    try:
        scores = await asyncio.to_thread(verified.evaluate, work)
    except PredictionsError as exc:
        return JobStatus.FAILED, str(exc)
    metrics = scores.metrics()
    if c.METRIC_AUROC not in metrics:
        why = scores.missing.get(c.METRIC_AUROC, "the test set does not allow it")
        return JobStatus.FAILED, f"the platform could not compute auroc: {why}"
    await asyncio.to_thread(_log_scores, w, job, metrics, scores.tags())
    shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    await livelog.note(f"scored by the platform: {shown}")
    return JobStatus.COMPLETED, ""


def _log_scores(w: WorkerContext, job: Job, metrics: dict[str, float], tags: dict[str, str]) -> None:
    now = int(time.time() * 1000)
    w.jobs.client.log_batch(job.run_id, metrics=[Metric(name, value, now, 0) for name, value in metrics.items()],
                            tags=[RunTag(name, value) for name, value in tags.items()])


def _check_dataset_version(settings: Settings, job: Job) -> None:
    """A job runs only on the data set it was submitted for: a worker host whose copy differs refuses it."""
    if not job.dataset_version:
        return
    local = settings.current_datasets().get(job.dataset)
    host = socket.gethostname()
    if local is None:
        raise PlatformFailed(f"the data set {job.dataset!r} is not registered on worker host {host}; the operators "
                             f"register it there with 'leadersboard dataset add {job.dataset} PATH'")
    if local.version != job.dataset_version:
        raise PlatformFailed(f"the data set {job.dataset!r} on worker host {host} is version {local.version[:19]}, "
                             f"the job was submitted for {job.dataset_version[:19]}: this host's copy differs, so "
                             "the job was not run on it; the operators register the same files there")


def _dataset(settings: Settings, job: Job) -> Dataset:
    dataset = settings.current_datasets().get(job.dataset)
    if dataset is None or not dataset.path.is_dir():
        raise JobFailed(f"the data set {job.dataset!r} is not available on this worker")
    return dataset


def _job_size(settings: Settings, job: Job) -> JobSize:
    try:
        return settings.job_size(job.resource_class)
    except KeyError:
        raise JobFailed(f"this instance no longer offers the resource class {job.resource_class!r}; "
                        f"submit again with one of {', '.join(settings.resource_classes.names)}") from None


def _sandbox(settings: Settings, job: Job, scratch: Path, view: View, gpu: str | None,
             verified: VerifiedRun | None, size: JobSize) -> Sandbox:
    work = scratch / WORK_DIR
    dataset = _dataset(settings, job)
    if verified is not None:  # the sealed view only: no label, no mask, no original name
        mounts = verified.mounts()
    else:
        mounts = {entry.name: entry for entry in sorted(dataset.path.iterdir()) if entry.is_dir()}
    clash = sorted(name for name in mounts if (work / name).exists())
    if clash:
        raise JobFailed(f"the submission has {', '.join(clash)}, which hides the data set folder of that name; "
                        "rename it")
    inside = view.scratch  # the scratch folder as the submission sees it
    cache = settings.current_model_cache()
    cache = cache if cache is not None and cache.is_dir() else None
    env = {
        "PATH": f"{PurePosixPath(view.python).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(inside / "home"),
        "TMPDIR": str(inside / "tmp"),
        "USER": "job",  # the sandbox's user has no account: who asks (getpass, MLflow) gets this name
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(inside / "home" / "hf"),
        "TORCH_HOME": str(inside / "home" / "torch"),
        "MPLCONFIGDIR": str(inside / "tmp"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{inside / STORE_FILE}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        "GIT_PYTHON_REFRESH": "quiet",  # mlflow looks for git, which a sandbox need not have
        "CUDA_VISIBLE_DEVICES": view.gpu,  # one GPU per worker; none when the worker has none
        # Pretrained weights from the operator's cache, read-only; without one, loads fail fast (offline).
        **(model_cache.environment(inside / MODEL_CACHE_DIR) if cache is not None else {}),
        JOB_ENV: job.id,
        "LEADERSBOARD_BENCHMARK": job.benchmark,
        **(verified.environment(view.workdir) if verified is not None else {}),
    }
    return Sandbox(scratch=scratch, command=entry_launcher.command(view.python, job.entrypoint), env=env,
                   timeout_seconds=size.time_limit_seconds, data_mounts=mounts, gpu=gpu,
                   model_cache=cache, size=size)


def _copy_results(w: WorkerContext, job: Job, scratch: Path, view: View, verified: bool) -> CopyReport:
    store = scratch / STORE_FILE
    if not _regular_file(store):  # the submission wrote this folder: no link or pipe is followed
        return CopyReport()
    runner = w.settings.runner
    limits = CopyLimits(runs=runner.max_copied_runs, metric_points=runner.max_metric_points,
                        params=runner.max_params, artifact_bytes=runner.max_artifact_bytes,
                        seconds=runner.copy_timeout_seconds)
    scope = ArtifactScope(host=scratch / WORK_DIR, inside=str(view.workdir))
    # A verified job's own figures are its claims: kept, under their own names, beside the platform's.
    return copy_local_runs(store, w.jobs.client, job.run_id, scope, limits,
                           c.SELF_REPORTED_PREFIX if verified else "")


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


async def _finish(w: WorkerContext, job: Job, scratch: Path, livelog: LiveLog, ending: Ending,
                  heartbeat: asyncio.Task[None]) -> None:
    status, error = ending.status, ending.error
    try:
        await livelog.note(f"status: {status}" + (f" ({error})" if error else ""))
        await livelog.close()
        await asyncio.to_thread(_upload_log, w, job, livelog.path)
        # Gone before the status says the job ended: an ended job has left nothing behind.
        await asyncio.to_thread(scratch_folder.remove, scratch)
        # Before the beat stops: the reconciler, missing the beat, then reads the final status.
        await w.jobs.end(job, status, error, platform_fault=ending.platform_fault)
    except Exception:  # the reconciler ends jobs left running; say it once here
        log.exception("job %s: could not record its end (%s); the reconciler will", job.id, status)
    finally:
        await _clean_up(w, job, scratch, heartbeat)
        log.info("job %s %s%s", job.id, status, f": {error}" if error else "")
        if w.on_job_end is not None:
            await w.on_job_end()


async def _hand_back(w: WorkerContext, job: Job, scratch: Path, livelog: LiveLog,
                     heartbeat: asyncio.Task[None]) -> None:
    """The worker stops while the job runs: the job is pending again, with its slot, and arq keeps its
    queue entry, so it runs again (here after a restart, or on another worker)."""
    try:
        await livelog.note(f"handed back: {HANDED_BACK}")
        await livelog.close()
        await asyncio.to_thread(scratch_folder.remove, scratch)
        await asyncio.to_thread(w.jobs.hand_back, job, HANDED_BACK)
    except Exception:  # still running, beat gone: the reconciler hands it back
        log.exception("job %s: could not hand it back; the reconciler will", job.id)
    finally:
        await _clean_up(w, job, scratch, heartbeat)
        log.info("job %s handed back: %s", job.id, HANDED_BACK)


async def _clean_up(w: WorkerContext, job: Job, scratch: Path, heartbeat: asyncio.Task[None]) -> None:
    """However the job went: its beat stops, its scratch folder goes."""
    heartbeat.cancel()
    with contextlib.suppress(RedisError):
        await w.redis.delete(c.heartbeat_key(job.id))
    with contextlib.suppress(OSError):
        scratch_folder.remove(scratch)


def _upload_log(w: WorkerContext, job: Job, path: Path) -> None:
    if _regular_file(path):
        w.jobs.client.log_artifact(job.run_id, str(path), c.LOG_ARTIFACT_DIR)


async def _beat(w: WorkerContext, job_id: str) -> None:
    """Prove this worker is alive while the job runs; the reconciler ends jobs whose beat stops."""
    period = max(1, w.settings.runner.heartbeat_seconds)
    while True:
        with contextlib.suppress(RedisError):
            await w.redis.set(c.heartbeat_key(job_id), w.worker_id, ex=3 * period)
        await asyncio.sleep(period)


def _failure(path: Path) -> str:
    """What the submission died of (its exception, with a hint for a known pitfall), for the failure reason."""
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            file.seek(max(0, file.tell() - LOG_TAIL_BYTES))
            tail = file.read().decode(errors="replace")
    except OSError:
        return "see the log"
    return str(read_failure(tail))
