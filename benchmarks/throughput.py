"""Queue throughput and fairness: many short jobs from many users through a few worker slots.

One instance served by `leadersboard serve --workers SLOTS` (its own Redis and MLflow, the process
executor). Every user uploads all their jobs at once through the API (POST /submissions), the users
at the same time; each job logs an AUROC and ends. Printed:
  - jobs per second, from the first upload to the last job's end;
  - each user's mean wait (admitted -> started) and their spread (max - min, and max / min): the
    fair order keeps a user's burst from starving the others;
  - the time from the last job's end to the published site counting it (leaderboard.json's
    completed_jobs).

    .venv/bin/python benchmarks/throughput.py [--jobs 200] [--users 10] [--slots 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from leadersboard.local.datagen import generate_dataset
from leadersboard.local.ports import free_port

CLI = [sys.executable, "-m", "leadersboard.cli"]
MAIN = '''import mlflow


def main():
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.75)


if __name__ == "__main__":
    main()
'''
CONFIG = "model: {}\ndata: {name: visa, init_args: {name: pcb1}}\ntrainer: {}\n"
BENCHMARK = "visa/pcb1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--slots", type=int, default=4, help="worker processes (one job each at a time)")
    args = parser.parse_args()
    per_user = -(-args.jobs // args.users)
    with tempfile.TemporaryDirectory(prefix="leadersboard-throughput-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "LEADERSBOARD_HOME": str(root / "home")}
        tokens = _instance(root, env, args.users, per_user)
        port = free_port()
        with (root / "serve.log").open("wb") as log:
            serve = subprocess.Popen([*CLI, "serve", "--api-port", str(port), "--web-port", str(free_port()),
                                      "--mlflow-port", str(free_port()), "--workers", str(args.slots)],
                                     env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(port, serve)
            return _measure(port, tokens, args.jobs, root / "home" / "site" / "leaderboard.json")
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(180)


def _instance(root: Path, env: dict[str, str], users: int, per_user: int) -> dict[str, str]:
    subprocess.run([*CLI, "init"], env=env, check=True, capture_output=True)
    config = root / "home" / "leadersboard.yaml"
    document = yaml.safe_load(config.read_text())
    document["limits"].update(submissions_per_hour=per_user, max_active_jobs=per_user, job_timeout_seconds=300)
    config.write_text(yaml.safe_dump(document))
    data = generate_dataset(root / "visa", layout="visa", categories=("pcb1",), normal=2, anomalous=1)
    subprocess.run([*CLI, "dataset", "add", "visa", str(data)], env=env, check=True, capture_output=True)
    tokens = {}
    for n in range(users):
        added = subprocess.run([*CLI, "user", "add", f"user{n}"], env=env, check=True, capture_output=True, text=True)
        tokens[f"user{n}"] = added.stdout.strip().splitlines()[-1]
    return tokens


def _wait_healthy(port: int, serve: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise SystemExit("serve exited; see serve.log")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the platform did not become healthy")


def _measure(port: int, tokens: dict[str, str], jobs: int, site: Path) -> int:
    owners: dict[str, str] = {}  # job id -> user
    lock = threading.Lock()
    users = list(tokens)
    counts = {user: jobs // len(users) + (1 if n < jobs % len(users) else 0) for n, user in enumerate(users)}

    def submit(user: str) -> None:
        for n in range(counts[user]):
            files = [("files", ("main.py", MAIN.encode())), ("files", ("config.yaml", CONFIG.encode()))]
            answer = httpx.post(f"http://127.0.0.1:{port}/submissions", files=files, data={"folder": f"j{n}"},
                                headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=120)
            if answer.status_code != 201:
                raise SystemExit(f"{user}'s upload {n} was refused: {answer.status_code} {answer.text}")
            with lock:
                owners[answer.json()["job_id"]] = user

    first = time.time()
    threads = [threading.Thread(target=submit, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uploaded = time.time()
    ended = _wait_all(port, tokens, owners)
    last_end = max(_stamp(job["finished_at"]) for job in ended.values())
    failed = [job_id for job_id, job in ended.items() if job["status"] != "completed"]
    shown = _site_counts(site, len(ended) - len(failed), last_end)
    waits: dict[str, list[float]] = {user: [] for user in users}
    for job_id, job in ended.items():
        waits[owners[job_id]].append(_stamp(job["started_at"]) - _stamp(job["created_at"]))
    means = {user: statistics.mean(values) for user, values in waits.items() if values}
    print(f"jobs: {len(ended)} from {len(users)} users ({', '.join(str(c) for c in counts.values())} each), "
          f"{len(failed)} not completed; uploads took {uploaded - first:.1f} s")
    print(f"throughput: {len(ended) / (last_end - first):.3f} jobs/s over {last_end - first:.1f} s")
    print("mean wait per user (s): " + ", ".join(f"{user} {mean:.1f}" for user, mean in sorted(means.items())))
    low, high = min(means.values()), max(means.values())
    print(f"fairness: spread of the users' mean waits {high - low:.1f} s (max {high:.1f}, min {low:.1f}, "
          f"ratio {high / low if low else float('inf'):.2f})")
    print(f"site: counted the last job {shown:.2f} s after it ended" if shown >= 0 else
          "site: did not count every job within 120 s")
    return 1 if failed or shown < 0 else 0


def _wait_all(port: int, tokens: dict[str, str], owners: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every job's final document, read as a participant's client would: each user's list of jobs
    (`GET /jobs`) once a second, not a request per job (that would load the service it measures)."""
    ended: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 3600
    while len(ended) < len(owners):
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(owners) - len(ended)} jobs did not end within an hour")
        for user in sorted({owners[job_id] for job_id in owners if job_id not in ended}):
            answer = httpx.get(f"http://127.0.0.1:{port}/jobs", headers={"Authorization": f"Bearer {tokens[user]}"},
                               timeout=30)
            if answer.status_code != 200:
                continue
            for job in answer.json():
                if job["job_id"] in owners and job["status"] in ("completed", "failed", "cancelled"):
                    ended[job["job_id"]] = job
        time.sleep(1)
    return ended


def _site_counts(site: Path, completed: int, last_end: float) -> float:
    """Seconds from the last job's end to the site counting every completed job; -1 if it never does."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            document = json.loads(site.read_text())
            boards = [b for b in document["benchmarks"] if b["benchmark"] == BENCHMARK]
            if boards and boards[0]["completed_jobs"] >= completed:
                return max(0.0, site.stat().st_mtime - last_end)
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    return -1.0


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


if __name__ == "__main__":
    sys.exit(main())
