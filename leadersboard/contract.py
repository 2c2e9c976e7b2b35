"""The names that components must agree on, in one place: Redis keys, the queue's job function,
MLflow experiments, tags and metrics, and artifact paths.

The service writes what the worker reads and the site generator ranks; a name spelled twice could
drift. One MLflow experiment per benchmark (named like the benchmark, e.g. `visa/pcb1`); one run
per job.
"""

PREFIX = "leadersboard"

# ------------------------------------------------------------------------------------------ Redis


def hourly_key(user: str) -> str:
    """Sorted set: this user's submissions of the rolling hour (member id, score time)."""
    return f"{PREFIX}:quota:{user}:hourly"


def active_key(user: str) -> str:
    """Sorted set: this user's jobs pending or running (member job id, score time)."""
    return f"{PREFIX}:quota:{user}:active"


def pending_push_key(push_id: str) -> str:
    """Hash: ref -> JSON of the submissions a pre-receive admitted, until the push settles."""
    return f"{PREFIX}:push:{push_id}"


def log_key(job_id: str) -> str:
    """String: the tail of a job's output, readable while it runs and for a week after."""
    return f"{PREFIX}:log:{job_id}"


def heartbeat_key(job_id: str) -> str:
    """String with a TTL: present while a live worker runs the job."""
    return f"{PREFIX}:heartbeat:{job_id}"


def job_user_key(job_id: str) -> str:
    """String with a TTL: the user of a queued job, by which workers take the next job of the user with
    the fewest running jobs (`queue.fair_order`)."""
    return f"{PREFIX}:job-user:{job_id}"


def job_class_key(job_id: str) -> str:
    """String with a TTL: the resource class of a queued job, which a worker reads before it takes the
    entry (a worker serves only the classes it was started for)."""
    return f"{PREFIX}:job-class:{job_id}"


def sandbox_key(worker_id: str) -> str:
    """String (JSON) with a TTL: how a live worker confines its jobs (executor, level, summary) and
    how many GPUs its jobs get (`SANDBOX_GPUS`)."""
    return f"{PREFIX}:sandbox:{worker_id}"


SANDBOX_GPUS = "gpus"  # the sandbox report's field: GPUs a job of this worker sees (0 on a CPU-only worker)
SANDBOX_CLASSES = "classes"  # the sandbox report's field: the resource classes it serves (null: every class)
SANDBOX_REPORTED_AT = "reported_at"  # the sandbox report's field: unix time the worker last wrote it (its heartbeat)

# Hash: admission rule -> how many requests it refused, ever. A hash in Redis, not a counter in one process,
# so that the refusals of every process (API, hooks' handler) add up for GET /metrics.
REFUSALS_KEY = f"{PREFIX}:refusals"
# Hash: rule of the folder rules -> how many pushes and uploads it rejected, ever (see rejections.py).
REJECTIONS_KEY = f"{PREFIX}:rejections"
# Hash: the run times of jobs that ended on a worker, as a histogram per resource class (see job_durations.py).
DURATIONS_KEY = f"{PREFIX}:durations"
# Hash: `STATUS|CLASS` -> jobs that ended so (completed, failed, cancelled), counted by `JobStore.end`.
ENDED_KEY = f"{PREFIX}:ended"
# Pub/sub channel: a worker on another host says a job ended; `serve` rebuilds the site it cannot build.
SITE_REBUILD_CHANNEL = f"{PREFIX}:site-rebuild"


# ------------------------------------------------------------------------------------------ queue

JOB_FUNCTION = "run_job"  # the arq function a queue entry names; its arguments: job id, run id
HEALTH_CHECK_SUFFIX = ":health-check"  # arq's key (queue name + suffix), kept fresh by every live worker

# ----------------------------------------------------------------------------------------- MLflow

EXPERIMENT_TAG = "leadersboard.benchmark"

TAG_JOB_ID = "leadersboard.job_id"
TAG_STATUS = "leadersboard.status"  # a JobStatus value
TAG_USER = "leadersboard.user"
TAG_SUBMISSION_ID = "leadersboard.submission_id"
TAG_FOLDER = "leadersboard.folder"  # the submission's folder name, shown as "submission"
TAG_COMMIT = "leadersboard.commit"
TAG_BENCHMARK = "leadersboard.benchmark"
TAG_METHOD = "leadersboard.method"  # submission.yaml 'method', when given
TAG_SUBMITTED_AT = "leadersboard.submitted_at"  # unix time of admission, as text
TAG_ERROR = "leadersboard.error"  # why a job failed, in words a participant understands
TAG_ENTRYPOINT = "leadersboard.entrypoint"
TAG_CONFIG = "leadersboard.config_file"
TAG_RESOURCE_CLASS = "leadersboard.resource_class"
TAG_WORKER = "leadersboard.worker"  # host:pid of the worker running the job
TAG_STARTED_AT = "leadersboard.started_at"  # unix time the worker took the job, as text
TAG_ATTEMPTS = "leadersboard.attempts"  # how many times a worker started the job
TAG_LOST = "leadersboard.lost"  # how many times the worker running the job died under it
TAG_HANDED_BACK = "leadersboard.handed_back"  # why the job last went back to the queue (a platform stop, say)
TAG_SHOWN_METRICS = "leadersboard.metrics"  # the config's `metrics:` list, comma-separated: what the site shows
TAG_SCORING = "leadersboard.scoring"  # self_reported or verified, fixed when the job is made
TAG_DATASET_VERSION = "leadersboard.dataset_version"  # the data set's content hash when the job was made
TAG_GPU = "leadersboard.gpu"  # the device the job ran on (CUDA_VISIBLE_DEVICES), when its worker has one
TAG_F1_FROM = "leadersboard.f1_from"  # verified: the submission's labels, or the best threshold
SELF_REPORTED_PREFIX = "self_reported."  # verified: what the submission logged itself, kept under this
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_F1_METHOD = "leadersboard.f1_method"  # verified: "label" (the job's labels) or "best_threshold" (of its scores)
TAG_F1_THRESHOLD = "leadersboard.f1_threshold"  # verified, best_threshold: the score threshold chosen
TAG_PIXEL_AUROC_MAX_ERROR = "leadersboard.pixel_auroc_max_error"  # verified: the bound of its binning
TAG_PARENT_RUN = "mlflow.parentRunId"  # a submission's own run, copied under its job's run
PLATFORM_TAG_PREFIXES = ("mlflow.", "leadersboard.")  # tags a submission may never set on its job

METRIC_AUROC = "auroc"
METRIC_F1 = "f1_score"
METRIC_PIXEL_AUROC = "pixel_auroc"  # verified benchmarks with masks, when the job wrote maps
METRIC_AUPRO = "aupro"  # likewise: area under the per-region overlap curve up to FPR 0.3
METRIC_RUNTIME = "runtime_seconds"
PLATFORM_METRICS = (METRIC_RUNTIME,)  # measured by the platform: a submission's own values are not copied
RANKED_METRICS = (METRIC_AUROC, METRIC_F1)  # what the leaderboard ranks on: finite, in [0, 1]

LOG_ARTIFACT_DIR = "leadersboard"  # the job log's folder among the run's artifacts
LOG_FILE = "job.log"  # the job log's name, in the job's scratch folder and among the artifacts
LOG_ARTIFACT = f"{LOG_ARTIFACT_DIR}/{LOG_FILE}"
