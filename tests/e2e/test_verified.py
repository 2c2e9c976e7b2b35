"""A verified benchmark through the whole platform: the job sees the sealed view only, writes its
predictions, and the platform scores them on labels the job never sees. A real `serve` with a jailing
worker (root, process executor), a real MLflow server, real git."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadersboard.examples import PADIM_VERIFIED
from leadersboard.local.datagen import generate_dataset
from leadersboard.local.redis_server import RedisServer

from support.hostile import LABEL_WALKER as WALKER
from support.platform import Platform, new_platform, run_tags
from support.shared import SessionMlflow

WRITE_PREDICTIONS = '''import csv
import os
import random


def predict(names):
    return {name: SCORE for name in names}


def main():
    test = os.environ["LEADERSBOARD_TEST_DIR"]
    names = sorted(os.listdir(test))
    scores = predict(names)
    with open(os.environ["LEADERSBOARD_PREDICTIONS"], "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["image", "score"])
        for name in names:
            out.writerow([name, scores[name]])
    EXTRA


if __name__ == "__main__":
    main()
'''

CLAIMS_A_PERFECT_SCORE = '''import mlflow
    with mlflow.start_run():
        mlflow.log_metric("auroc", 1.0)
        mlflow.log_metric("f1_score", 1.0)'''

@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
             mlflow_server: SessionMlflow) -> Iterator[Platform]:
    started = new_platform(tmp_path_factory.mktemp("verified"), redis_server.url, mlflow_server.url,
                           limits={"max_active_jobs": 10, "submissions_per_hour": 100})
    data = generate_dataset(tmp_path_factory.mktemp("data") / "vset-secret-origin", "visa", ("pcb1",),
                            normal=20, anomalous=6, size=64)
    started.instance.cli("dataset", "add", "vset", str(data), "--scoring", "verified")
    try:
        yield started.start()
    finally:
        started.stop()


def run(platform: Platform, tmp_path: Path, folder: str, main: str) -> tuple[str, dict[str, Any]]:
    user = next(iter(platform.instance.tokens))
    job_id = platform.submit(platform.client(tmp_path, user), folder, main, dataset="vset", topic=folder)
    return user, platform.wait_status(job_id, user, timeout=240)


def write_predictions(score: str, extra: str = "pass") -> str:
    return WRITE_PREDICTIONS.replace("SCORE", score).replace("EXTRA", extra)


def test_a_constant_predictor_scores_one_half(platform: Platform, tmp_path: Path) -> None:
    user, job = run(platform, tmp_path, "constant", write_predictions("0.5"))
    assert job["status"] == "completed", job
    assert job["metrics"]["auroc"] == 0.5 and job["scoring"] == "verified"
    run_, _ = run_tags(platform, job)
    assert run_.data.tags["leadersboard.scoring"] == "verified"
    log = platform.api("GET", f"/jobs/{job['job_id']}/logs", user).text
    # VisA's own split (split_csv/1cls.csv, as generated): 5 of 20 normal images and the 6 anomalous ones
    assert "verified benchmark: 11 test images in sealed-test/" in log
    assert "scored by the platform: auroc 0.5000" in log


def test_the_platform_figure_ranks_not_the_claim(platform: Platform, tmp_path: Path) -> None:
    main = write_predictions("random.Random(name).random()", CLAIMS_A_PERFECT_SCORE)
    _, job = run(platform, tmp_path, "claims", main)
    assert job["status"] == "completed", job
    assert job["metrics"]["auroc"] < 1.0 and job["metrics"]["self_reported.auroc"] == 1.0
    board = json.loads((platform.instance.home / "site" / "leaderboard.json").read_text(encoding="utf-8"))
    rows = [row for b in board["benchmarks"] if b["benchmark"] == "vset/pcb1" for row in b["ranking"]]
    assert rows and all(row["scoring"] == "verified" and row["auroc"] < 1.0 for row in rows)


@pytest.mark.parametrize(("folder", "main", "reason"), [
    ("no-file", write_predictions("0.5").replace('os.environ["LEADERSBOARD_PREDICTIONS"]', '"elsewhere.csv"'),
     "predictions.csv"),
    ("nan", write_predictions("float('nan')"), "is not a finite number"),
])
def test_malformed_predictions_fail_with_their_reason(platform: Platform, tmp_path: Path, folder: str, main: str,
                                                      reason: str) -> None:
    _, job = run(platform, tmp_path, folder, main)
    assert job["status"] == "failed" and reason in job["error"], job["error"]


def test_the_job_finds_no_label_mask_or_original_name(platform: Platform, tmp_path: Path) -> None:
    # The data set's folder (its name is unique), the sealed views' home, the originals' layout.
    secrets = ["vset-secret-origin", str(platform.instance.home / "sealed"), "Data/Images/Anomaly"]
    user, job = run(platform, tmp_path, "walker", WALKER.replace("SECRET_NAMES", repr(secrets)))
    assert job["status"] == "completed", job
    log = platform.api("GET", f"/jobs/{job['job_id']}/logs", user).text
    assert "walked; 0 found" in log and "FOUND" not in log, log[-3000:]


def test_the_sealed_view_is_built_once_per_version(platform: Platform, tmp_path: Path) -> None:
    sealed = platform.instance.home / "sealed" / "vset"
    run(platform, tmp_path, "first-view", write_predictions("0.5"))
    versions = sorted(p.name for p in sealed.iterdir() if p.is_dir())
    test_dir = sealed / versions[0] / "pcb1" / "view" / "test"
    names, inode = sorted(os.listdir(test_dir)), test_dir.stat().st_ino
    run(platform, tmp_path, "second-view", write_predictions("0.5"))
    assert sorted(os.listdir(test_dir)) == names and test_dir.stat().st_ino == inode
    assert sorted(p.name for p in sealed.iterdir() if p.is_dir()) == versions


@pytest.mark.anomalib
@pytest.mark.slow
@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_the_padim_example_scores_through_the_platform(platform: Platform, tmp_path: Path) -> None:
    files = {path.name: path.read_text(encoding="utf-8") for path in PADIM_VERIFIED.iterdir() if path.is_file()}
    files["config.yaml"] = files["config.yaml"].replace("name: mvtec", "name: vset").replace(
        "name: bottle", "name: pcb1")
    user = next(iter(platform.instance.tokens))
    git = platform.client(tmp_path, user)
    git.commit("verified padim", files, "padim-verified")
    code, out = git.push(f"HEAD:users/{user}/padim-verified")
    assert code == 0, out
    job_id = next(line.split(" job ", 1)[1].split()[0] for line in out.splitlines() if "padim-verified: job " in line)
    job = platform.wait_status(job_id, user, timeout=900)
    assert job["status"] == "completed", (job, platform.api("GET", f"/jobs/{job_id}/logs", user).text[-3000:])
    assert 0.5 < job["metrics"]["auroc"] <= 1.0 and {"pixel_auroc", "aupro"} <= set(job["metrics"])
