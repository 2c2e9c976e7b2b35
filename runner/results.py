"""Copying what a submission logged into its local MLflow store over to the job's central run.

The submission's code never talks to the central server: it logs to a sqlite store in its
sandbox, and afterwards this module copies each run it made (metric history, params, tags,
artifacts). One run is copied into the job's run itself; several become nested runs under it, and
the job's run takes the metrics of the last one that logged `auroc`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient

from leadersboard import contract as c

METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
TAGS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000


@dataclass(frozen=True)
class CopyReport:
    runs: int
    metrics: dict[str, float]
    artifact_bytes: int
    skipped_artifacts: bool


def copy_local_runs(local_uri: str, central: MlflowClient, job_run_id: str, scope: ArtifactScope) -> CopyReport:
    local = MlflowClient(tracking_uri=local_uri)
    runs = _all_runs(local)
    if not runs:
        return CopyReport(0, {}, 0, False)
    start_budget = scope.budget
    skipped = False
    if len(runs) == 1:
        skipped |= _copy_run(local, runs[0], central, job_run_id, scope)
        return CopyReport(1, dict(runs[0].data.metrics), start_budget - scope.budget, skipped)
    experiment_id = central.get_run(job_run_id).info.experiment_id
    for run in runs:
        child = central.create_run(experiment_id, start_time=run.info.start_time,
                                   tags={c.TAG_PARENT_RUN: job_run_id, "mlflow.runName": run.info.run_name or ""})
        skipped |= _copy_run(local, run, central, child.info.run_id, scope)
        central.set_terminated(child.info.run_id, status=run.info.status if run.info.status in
                               ("FINISHED", "FAILED", "KILLED") else "FINISHED", end_time=run.info.end_time)
    scored = [r for r in runs if c.METRIC_AUROC in r.data.metrics]
    metrics = dict(scored[-1].data.metrics) if scored else {}
    if metrics:
        _log_batches(central, job_run_id, metrics=[Metric(k, v, _now_ms(), 0) for k, v in metrics.items()])
    return CopyReport(len(runs), metrics, start_budget - scope.budget, skipped)


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


def _copy_run(local: MlflowClient, run: Run, central: MlflowClient, target: str, scope: ArtifactScope) -> bool:
    """Copy one run's data into `target`; True when artifacts were left out for size."""
    metrics = [m for key in run.data.metrics for m in local.get_metric_history(run.info.run_id, key)]
    params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in run.data.params.items()]
    # The submission's own tags, but never the platform's or MLflow's system tags: no spoofing.
    tags = [RunTag(k, v) for k, v in run.data.tags.items()
            if not k.startswith(c.PLATFORM_TAG_PREFIXES)]
    _log_batches(central, target, metrics, params, tags)
    return _copy_artifacts(local, run, central, target, scope)


def _log_batches(client: MlflowClient, run_id: str, metrics: list[Metric] | None = None,
                 params: list[Param] | None = None, tags: list[RunTag] | None = None) -> None:
    metrics, params, tags = metrics or [], params or [], tags or []
    for i in range(0, len(metrics), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[i:i + METRICS_PER_BATCH])
    for i in range(0, len(params), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params[i:i + PARAMS_PER_BATCH])
    for i in range(0, len(tags), TAGS_PER_BATCH):
        client.log_batch(run_id, tags=tags[i:i + TAGS_PER_BATCH])


def _copy_artifacts(local: MlflowClient, run: Run, central: MlflowClient, target: str, scope: ArtifactScope) -> bool:
    """Copy the run's artifact files, only from inside the sandbox and never through a link: the
    local store is written by the submission, so its artifact paths are not to be trusted."""
    root = scope.resolve(run.info.artifact_uri)
    if root is None or not root.is_dir():
        return False
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]
        candidates = (Path(folder) / name for name in names)
        files += [f for f in candidates if f.is_file() and not f.is_symlink()]
    if not files:
        return False
    size = sum(f.stat().st_size for f in files)
    if size > scope.budget:
        return True
    scope.budget -= size
    with tempfile.TemporaryDirectory(prefix="lb-artifacts-") as tmp:
        for file in files:
            dest = Path(tmp) / file.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, dest, follow_symlinks=False)
        central.log_artifacts(target, tmp)
    return False


@dataclass
class ArtifactScope:
    """Where a sandbox's artifact paths may point: `inside` (as the submission saw it) maps to `host`."""

    host: Path
    budget: int
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
