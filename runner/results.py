"""Copying what a submission logged into its local MLflow store over to the job's central run.

The submission's code never talks to the central server: it logs to a sqlite store in its
sandbox, and afterwards this module copies each run it made (metric history, params, tags,
artifacts). One run is copied into the job's run itself; several become nested runs under it, and
the job's run takes the metrics of the last one that logged `auroc`.

Nothing the submission logs can stand for the platform: tags under `leadersboard.` or `mlflow.`
and the metrics the platform measures itself (`runtime_seconds`) are not copied. The copy is
bounded (runs, metric values, params, artifact bytes, time: `CopyLimits`), and an artifact is
copied only when it is a regular file inside the working folder with no other name (no symbolic
link, no hard link to a file elsewhere).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient

from leadersboard import contract as c

from .local_store import CopyLimits, CopyRefused, size_up

METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
TAGS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000


@dataclass
class CopyReport:
    runs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # what the job's run ranks on (latest values)
    artifact_bytes: int = 0
    ignored: set[str] = field(default_factory=set)  # metrics the submission may not set, left out


@dataclass
class _Copy:
    """One copy in progress: where from and to, and what it may still spend."""

    local: MlflowClient
    central: MlflowClient
    scope: ArtifactScope
    limits: CopyLimits
    deadline: float
    report: CopyReport
    prefix: str = ""  # put before every metric name the submission logged

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise CopyRefused(f"copying the job's results took longer than {self.limits.seconds:.0f} s "
                              "(runner.copy_timeout_seconds); log less")


def copy_local_runs(store: Path, central: MlflowClient, job_run_id: str, scope: ArtifactScope,
                    limits: CopyLimits, metric_prefix: str = "") -> CopyReport:
    """Copy the runs of the submission's store at `store` into the job's run; `CopyRefused` when a
    limit is passed (what was copied until then stays, the job fails with the reason). With
    `metric_prefix`, the submission's metrics are kept under prefixed names (a verified job's own
    claims, beside the platform's scores); the report has them under their own names."""
    deadline = time.monotonic() + limits.seconds
    size_up(store, limits, deadline)
    copy = _Copy(MlflowClient(tracking_uri=f"sqlite:///{store}"), central, scope, limits, deadline, CopyReport(),
                 metric_prefix)
    runs = _all_runs(copy.local)
    copy.report.runs = len(runs)
    if len(runs) == 1:
        _copy_run(copy, runs[0], job_run_id)
        copy.report.metrics = _allowed(runs[0].data.metrics, copy.report)
        return copy.report
    experiment_id = central.get_run(job_run_id).info.experiment_id
    for run in runs:
        child = central.create_run(experiment_id, start_time=run.info.start_time,
                                   tags={c.TAG_PARENT_RUN: job_run_id, "mlflow.runName": run.info.run_name or ""})
        _copy_run(copy, run, child.info.run_id)
        central.set_terminated(child.info.run_id, status=run.info.status if run.info.status in
                               ("FINISHED", "FAILED", "KILLED") else "FINISHED", end_time=run.info.end_time)
    scored = [r for r in runs if c.METRIC_AUROC in r.data.metrics]
    copy.report.metrics = _allowed(scored[-1].data.metrics, copy.report) if scored else {}
    if copy.report.metrics:
        _log_batches(copy, job_run_id, metrics=[Metric(copy.prefix + k, v, _now_ms(), 0)
                                                for k, v in copy.report.metrics.items()])
    return copy.report


def _allowed(metrics: dict[str, float], report: CopyReport) -> dict[str, float]:
    """The metrics a submission may set: not those the platform measures (noted in the report)."""
    report.ignored.update(name for name in metrics if name in c.PLATFORM_METRICS)
    return {name: value for name, value in metrics.items() if name not in c.PLATFORM_METRICS}


def _all_runs(client: MlflowClient) -> list[Run]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(experiments, max_results=1000, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        runs += list(page)
        token = page.token
        if not token:
            return sorted(runs, key=lambda r: (r.info.end_time or 0, r.info.start_time or 0))


def _copy_run(copy: _Copy, run: Run, target: str) -> None:
    """Copy one run's metric history, params, own tags and artifacts into `target`."""
    metrics: list[Metric] = []
    for key in _allowed(run.data.metrics, copy.report):
        copy.check_time()
        metrics += [Metric(copy.prefix + m.key, m.value, m.timestamp, m.step)
                    for m in copy.local.get_metric_history(run.info.run_id, key)]
    params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in run.data.params.items()]
    # The submission's own tags, but never the platform's or MLflow's system tags: no spoofing.
    tags = [RunTag(k, v) for k, v in run.data.tags.items() if not k.startswith(c.PLATFORM_TAG_PREFIXES)]
    _log_batches(copy, target, metrics, params, tags)
    _copy_artifacts(copy, run, target)


def _log_batches(copy: _Copy, run_id: str, metrics: list[Metric] | None = None,
                 params: list[Param] | None = None, tags: list[RunTag] | None = None) -> None:
    metrics, params, tags = metrics or [], params or [], tags or []
    for i in range(0, len(metrics), METRICS_PER_BATCH):
        copy.check_time()
        copy.central.log_batch(run_id, metrics=metrics[i:i + METRICS_PER_BATCH])
    for i in range(0, len(params), PARAMS_PER_BATCH):
        copy.central.log_batch(run_id, params=params[i:i + PARAMS_PER_BATCH])
    for i in range(0, len(tags), TAGS_PER_BATCH):
        copy.central.log_batch(run_id, tags=tags[i:i + TAGS_PER_BATCH])


def _copy_artifacts(copy: _Copy, run: Run, target: str) -> None:
    """Copy the run's artifact files: only from inside the sandbox, only regular files with one name.
    The local store is written by the submission, so its artifact paths are not to be trusted."""
    root = copy.scope.resolve(run.info.artifact_uri)
    if root is None or not root.is_dir():
        return
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]
        files += [path for path in (Path(folder) / name for name in names) if _one_regular_file(path)]
    if not files:
        return
    size = sum(f.lstat().st_size for f in files)
    spent = copy.report.artifact_bytes + size
    if spent > copy.limits.artifact_bytes:
        raise CopyRefused(f"the job's artifacts hold {_mb(spent)}, over the platform's limit of "
                          f"{_mb(copy.limits.artifact_bytes)} (runner.max_artifact_bytes); log smaller artifacts")
    copy.report.artifact_bytes = spent
    with tempfile.TemporaryDirectory(prefix="lb-artifacts-") as tmp:
        for file in files:
            copy.check_time()
            dest = Path(tmp) / file.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, dest, follow_symlinks=False)
        copy.central.log_artifacts(target, tmp)


def _one_regular_file(path: Path) -> bool:
    """A regular file (not a link, pipe or device) that no other name shares: a hard link to a file
    outside the working folder would carry that file's content out."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


@dataclass
class ArtifactScope:
    """Where a sandbox's artifact paths may point: `inside` (as the submission saw it) maps to `host`."""

    host: Path
    inside: str | None = None

    def resolve(self, artifact_uri: str) -> Path | None:
        parsed = urlparse(artifact_uri)
        if parsed.scheme not in ("", "file"):
            return None
        path = unquote(parsed.path)
        if self.inside is not None:
            if not (path == self.inside or path.startswith(self.inside.rstrip("/") + "/")):
                return None
            path = str(self.host) + path[len(self.inside.rstrip("/")):]
        resolved = Path(path).resolve()
        host = self.host.resolve()
        return resolved if resolved == host or host in resolved.parents else None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
