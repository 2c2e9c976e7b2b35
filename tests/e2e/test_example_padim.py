"""The example submission runs for real: anomalib's PaDiM on a generated VisA-like set, on the CPU,
logging to a local MLflow store the way the platform's sandbox sets it up.

Needs anomalib (the `anomalib` extra); without it the run fails, and so does this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from leadersboard.examples import PADIM
from leadersboard.local.datagen import generate_dataset

EXAMPLE = PADIM

pytestmark = [pytest.mark.anomalib, pytest.mark.slow]


# MLflow's SQLite store uses an SQLAlchemy loader that SQLAlchemy 2.1 deprecates.
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")
@pytest.mark.timeout(600)
def test_padim_example_trains_evaluates_and_logs_to_mlflow(tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "visa", layout="visa", categories=("pcb1",))
    # The job's working directory: the submission's files, with the data set's category folders
    # reachable by the relative paths of config.yaml (root: pcb1/Data/Images).
    work = tmp_path / "work"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("__pycache__", "results", "mlruns*"))
    (work / "pcb1").symlink_to(data / "pcb1", target_is_directory=True)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env.update(HF_HUB_OFFLINE="1", MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_TRACKING_URI=tracking_uri,
               MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true")

    result = subprocess.run([sys.executable, "main.py"], cwd=work, env=env, capture_output=True, text=True,
                            timeout=540, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "auroc: " in result.stdout and "f1_score: " in result.stdout, output[-3000:]
    assert list((work / "results").rglob("*.ckpt")), "anomalib writes its checkpoint under ./results"

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("padim")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert metrics["auroc"] >= 0.9, metrics
    assert 0.0 <= metrics["f1_score"] <= 1.0, metrics
    assert "pixel_auroc" in metrics and "pixel_f1_score" in metrics, "the generated set has masks"
    assert run.data.params["category"] == "pcb1" and run.data.params["dataset"] == "visa"
    assert run.data.params["pre_trained"] == "False"
