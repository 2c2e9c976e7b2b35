"""Names shared by everything that writes or reads job runs in MLflow.

One MLflow experiment per benchmark (named like the benchmark, e.g. `visa/pcb1`); one run per job.
"""

EXPERIMENT_TAG = "leadersboard.benchmark"

TAG_JOB_ID = "leadersboard.job_id"
TAG_STATUS = "leadersboard.status"  # pending | running | completed | failed | cancelled
TAG_USER = "leadersboard.user"
TAG_SUBMISSION_ID = "leadersboard.submission_id"
TAG_FOLDER = "leadersboard.folder"  # the submission's folder name, shown as "submission"
TAG_COMMIT = "leadersboard.commit"
TAG_BENCHMARK = "leadersboard.benchmark"
TAG_METHOD = "leadersboard.method"  # submission.yaml 'method', when given
TAG_SUBMITTED_AT = "leadersboard.submitted_at"  # unix time of admission, as text
TAG_ERROR = "leadersboard.error"  # why a job failed, in words a participant understands
TAG_GIT_COMMIT = "mlflow.source.git.commit"

METRIC_AUROC = "auroc"
METRIC_F1 = "f1_score"
METRIC_RUNTIME = "runtime_seconds"
