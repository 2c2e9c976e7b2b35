"""Copying a job's own MLflow store into its central run, against the session's real MLflow server:
what is copied, what is left out, and the limits."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from leadersboard import contract as c
from leadersboard.runner.local_store import CopyLimits, CopyRefused
from leadersboard.runner.results import ArtifactScope, copy_local_runs

from support.instances import mlflow_template
from support.shared import SessionMlflow

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")  # the local sqlite store
LIMITS = CopyLimits(runs=10, metric_points=1000, params=100, artifact_bytes=10_000, seconds=60)


def local_store(tmp_path: Path, runs: int = 1) -> Path:
    """A store as a submission leaves it: runs with metrics (one of them the platform's name), tags, an artifact."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template(), path)
    client = MlflowClient(f"sqlite:///{path}")
    experiment = client.create_experiment("mine", artifact_location=str(tmp_path / "work" / "mlruns"))
    for n in range(runs):
        run = client.create_run(experiment, tags={"team": "blue", c.TAG_USER: "mallory"})
        for step in range(3):
            client.log_metric(run.info.run_id, "loss", 1 / (step + 1), step=step)
        client.log_metric(run.info.run_id, c.METRIC_AUROC, 0.8 + n / 100)
        client.log_metric(run.info.run_id, c.METRIC_RUNTIME, 0.001)
        client.log_param(run.info.run_id, "lr", str(n))
        (tmp_path / "note.txt").write_text("mine")
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
        client.set_terminated(run.info.run_id)
    return path


def central_run(mlflow_server: SessionMlflow) -> tuple[MlflowClient, str]:
    client = MlflowClient(mlflow_server.url)
    experiment = client.create_experiment(f"copy-{uuid.uuid4().hex[:8]}")
    return client, client.create_run(experiment).info.run_id


def test_one_run_is_copied_into_the_job_run(tmp_path: Path, mlflow_server: SessionMlflow) -> None:
    store = local_store(tmp_path)
    central, run_id = central_run(mlflow_server)
    report = copy_local_runs(store, central, run_id, ArtifactScope(host=tmp_path / "work"), LIMITS)
    assert report.runs == 1 and report.metrics == {"loss": pytest.approx(1 / 3), c.METRIC_AUROC: 0.8}
    assert report.ignored == {c.METRIC_RUNTIME} and report.artifact_bytes == 4
    run = central.get_run(run_id)
    assert run.data.tags.get("team") == "blue" and c.TAG_USER not in run.data.tags
    assert c.METRIC_RUNTIME not in run.data.metrics and run.data.params == {"lr": "0"}
    assert [m.value for m in central.get_metric_history(run_id, "loss")] == pytest.approx([1, 0.5, 1 / 3])
    assert [a.path for a in central.list_artifacts(run_id)] == ["note.txt"]


def test_several_runs_nest_and_the_last_scored_one_counts(tmp_path: Path, mlflow_server: SessionMlflow) -> None:
    store = local_store(tmp_path, runs=2)
    central, run_id = central_run(mlflow_server)
    report = copy_local_runs(store, central, run_id, ArtifactScope(host=tmp_path / "work"), LIMITS)
    assert report.runs == 2 and report.metrics[c.METRIC_AUROC] == pytest.approx(0.81)
    children = central.search_runs([central.get_run(run_id).info.experiment_id],
                                   f"tags.`{c.TAG_PARENT_RUN}` = '{run_id}'")
    assert len(children) == 2 and all(c.METRIC_RUNTIME not in child.data.metrics for child in children)


@pytest.mark.parametrize(("limits", "message"), [
    (CopyLimits(10, 1000, 100, 3, 60), "the job's artifacts hold 0.0 MB, over the platform's limit"),
    (CopyLimits(10, 1000, 100, 10_000, 0), "copying the job's results took longer than 0 s"),
    (CopyLimits(10, 4, 100, 10_000, 60), "the job logged 5 metric values"),
])
def test_past_a_limit_the_copy_is_refused(tmp_path: Path, mlflow_server: SessionMlflow, limits: CopyLimits,
                                          message: str) -> None:
    store = local_store(tmp_path)
    central, run_id = central_run(mlflow_server)
    with pytest.raises(CopyRefused) as refused:
        copy_local_runs(store, central, run_id, ArtifactScope(host=tmp_path / "work"), limits)
    assert message in str(refused.value)
