"""Backups (docs/deploy.md): `leadersboard backup` of a running instance, `leadersboard restore` into a fresh
folder, and `serve` on the restored folder shows the same jobs, logs, branches and leaderboard.

The platform starts its own Redis and MLflow here (as a deployment does), so that MLflow's store and
artifacts live in the instance folder the backup copies; the job only logs to MLflow, so it takes seconds.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.instances import Instance, run_cli
from support.platform import MLFLOW_MAIN, Platform, new_platform

SITE_SECONDS = 120  # the worker rebuilds the site after the job ends; a loaded machine takes a while


def _snapshot(platform: Platform, user: str, job_id: str) -> dict[str, Any]:
    """What a participant sees of the instance: the job, its list, its log, the branches, the leaderboard."""
    board = httpx.get(f"{platform.base_url}/leaderboard/", timeout=30)
    exported = httpx.get(f"{platform.base_url}/leaderboard/leaderboard.json", timeout=30)
    assert board.status_code == 200 and exported.status_code == 200
    logs = platform.api("GET", f"/jobs/{job_id}/logs", user)
    assert logs.status_code == 200, logs.text
    jobs = platform.api("GET", "/jobs", user)
    assert jobs.status_code == 200, jobs.text
    # serve builds the site when it starts: the same rows, a new build time (the page's footer, the export's field)
    document = {k: v for k, v in exported.json().items() if k != "generated_at"}
    return {"status": platform.status(job_id, user), "jobs": jobs.json(), "log": logs.text,
            "index.html": re.sub(r"<footer>.*</footer>", "<footer/>", board.text, flags=re.S),
            "leaderboard.json": document}


def _wait_for_site(home: Path, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + SITE_SECONDS
    path = home / "site" / "leaderboard.json"
    while True:
        if path.exists() and job_id in path.read_text(encoding="utf-8"):
            document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return document
        assert time.monotonic() < deadline, f"the site never listed job {job_id}"
        time.sleep(0.5)


def _branches(platform: Platform, user: str, tmp: Path) -> str:
    git = platform.client(tmp, user)
    code, out = git.git("ls-remote", "origin")
    assert code == 0, out
    return out


@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_restored_instance_has_the_same_jobs_and_site(tmp_path_factory: pytest.TempPathFactory,
                                                      tmp_path: Path) -> None:
    platform = new_platform(tmp_path_factory.mktemp("platform"), None, None, workers=1)
    user = next(iter(platform.instance.tokens))
    backup = tmp_path / "backup"
    platform.start()
    try:
        git = platform.client(tmp_path, user)
        job_id = platform.submit(git, "tiny", MLFLOW_MAIN.format(auroc=0.91, f1=0.8))
        assert platform.wait_status(job_id, user)["status"] == "completed"
        _wait_for_site(platform.instance.home, job_id)
        taken = run_cli("backup", str(backup), home=platform.instance.home)  # while serve runs
        before = _snapshot(platform, user, job_id)
        branches = _branches(platform, user, tmp_path)
    finally:
        platform.stop()
    for token in platform.instance.tokens.values():
        assert token not in taken.stdout + taken.stderr
    assert {"leadersboard.yaml", "leadersboard.db", "submissions.bundle", "mlflow", "site",
            "manifest.json"} <= {p.name for p in backup.iterdir()}

    home = tmp_path_factory.mktemp("restored") / "home"
    run_cli("restore", str(backup), "--home", str(home))
    refused = run_cli("restore", str(backup), "--home", str(home), check=False)
    assert refused.returncode == 1 and "not an empty folder" in refused.stderr

    restored = Platform(Instance(home, dict(platform.instance.tokens)), None, None, workers=1)
    restored.start()
    try:
        after = _snapshot(restored, user, job_id)
        assert _branches(restored, user, tmp_path) == branches
    finally:
        restored.stop()
    assert after == before
    assert after["status"]["status"] == "completed" and "done: auroc=0.91" in after["log"]

    # The leaderboard built again from the restored MLflow store is the one the backup holds.
    rebuilt = tmp_path / "rebuilt"
    run_cli("site", "build", "--out", str(rebuilt), home=home,
            env={"MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"})
    again = json.loads((rebuilt / "leaderboard.json").read_text(encoding="utf-8"))
    assert {**again, "generated_at": None} == {**before["leaderboard.json"], "generated_at": None}


def test_a_damaged_backup_restores_nothing_and_nothing_is_overwritten(instance: Instance, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    instance.cli("backup", str(backup))
    refused = instance.cli("backup", str(backup), check=False)  # a backup is never written over
    assert refused.returncode == 1 and "not an empty folder" in refused.stderr
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]

    database = backup / "leadersboard.db"
    content = bytearray(database.read_bytes())
    content[-1] ^= 0xFF  # one bit of rot
    database.write_bytes(bytes(content))
    target = tmp_path / "restored"
    damaged = run_cli("restore", str(backup), "--home", str(target), check=False)
    assert damaged.returncode == 1 and "damaged" in damaged.stderr and "leadersboard.db" in damaged.stderr
    assert not target.exists()
    for token in instance.tokens.values():
        assert token not in damaged.stdout + damaged.stderr
