"""`leadersboard demo`: the product's main job on its embedded default.

A throw-away instance, a generated VisA-like data set, the platform started, the example
submission pushed with the real git client, and the job followed to its end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leadersboard.examples import PADIM
from leadersboard.jobs import JobStatus
from leadersboard.local.datagen import generate_dataset
from leadersboard.local.ports import free_port

DEMO_USER = "demo"
JOB_APPEARS_SECONDS = 60
HEALTHY_SECONDS = 300  # a first start on a slow or busy host: MLflow alone may take 90 s, the worker imports torch
STATUS_ICONS = {JobStatus.PENDING: "⏳", JobStatus.RUNNING: "⏳", JobStatus.COMPLETED: "✅", JobStatus.FAILED: "❌",
                JobStatus.CANCELLED: "⛔"}

Echo = Callable[[str], None]


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


def run_demo(echo: Echo, home: Path | None = None) -> Path:
    """Run the demo; returns the instance folder it used."""
    home = home or Path(tempfile.mkdtemp(prefix="leadersboard-demo-"))
    env = {**os.environ, "LEADERSBOARD_HOME": str(home)}
    env.pop("LEADERSBOARD_REDIS_URL", None)
    cli = [sys.executable, "-m", "leadersboard.cli"]

    echo(f"1/6 instance in {home}")
    _run([*cli, "init"], env)
    echo("2/6 generating a small VisA-like data set (pcb1: normal, anomalous, masks)")
    data = generate_dataset(home / "datasets" / "visa", layout="visa", categories=("pcb1",))
    _run([*cli, "dataset", "add", "visa", str(data)], env)
    token = _run([*cli, "user", "add", DEMO_USER], env).strip().splitlines()[-1]

    port, web_port = free_port(), free_port()
    echo(f"3/6 starting the platform on http://127.0.0.1:{port} (Redis, MLflow, one worker; web form on "
         f"http://127.0.0.1:{web_port}/)")
    with (home / "serve.log").open("wb") as serve_log:
        server = subprocess.Popen([*cli, "serve", "--api-port", str(port), "--web-port", str(web_port),
                                   "--mlflow-port", str(free_port())],
                                  env=env, stdout=serve_log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(port, server)
        echo("4/6 pushing examples/padim with git")
        job_ids = _push_example(home, port, token, echo)
        if len(job_ids) != 1:
            raise DemoError(f"expected one job from the push, got {job_ids}")
        echo(f"5/6 following job {job_ids[0]}")
        job = _follow(port, token, job_ids[0], echo)
        if job["status"] != JobStatus.COMPLETED:
            raise DemoError(f"the job ended {job['status']}: {job['error']}\n--- log ---\n"
                            + _get(port, token, f"/jobs/{job_ids[0]}/logs").decode(errors="replace")[-3000:])
        metrics = ", ".join(f"{k} = {v:.4g}" for k, v in sorted(job["metrics"].items()))
        echo(f"6/6 completed: {metrics}")
        site = _wait_for_site(home / "site")
        echo(f"leaderboard: {site / 'index.html'} (also at http://127.0.0.1:{port}/leaderboard/ while serving)")
    finally:
        server.terminate()
        server.wait(60)
    return home


def _follow(port: int, token: str, job_id: str, echo: Echo, timeout: float = 1800) -> dict[str, Any]:
    """Poll the job's status, saying each change, until it ends."""
    started = time.monotonic()
    deadline = started + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            job: dict[str, Any] = json.loads(_get(port, token, f"/jobs/{job_id}/status"))
        except urllib.error.HTTPError as exc:
            if exc.code != 404 or last or time.monotonic() > started + JOB_APPEARS_SECONDS:
                raise
            time.sleep(0.2)  # a push returns before its job is created: it exists a moment later
            continue
        if job["status"] != last:
            last = job["status"]
            echo(f"    {time.strftime('%H:%M:%S')} {STATUS_ICONS.get(last, '')} {last}")
        if not JobStatus.of(job["status"]).active:
            return job
        time.sleep(1)
    raise DemoError(f"job {job_id} did not end within {timeout:.0f} s")


def _wait_for_site(site: Path, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (site / "index.html").is_file():
            return site
        time.sleep(0.5)
    raise DemoError("the leaderboard site was not built")


def _get(port: int, token: str, path: str) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (our own http URL)
        return bytes(answer.read())


def _push_example(home: Path, port: int, token: str, echo: Echo) -> list[str]:
    work = home / "work"
    url = f"http://{DEMO_USER}:{token}@127.0.0.1:{port}/git/submissions.git"
    git_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    _run(["git", "clone", "-q", url, str(work)], git_env)
    _run(["git", "checkout", "-q", "-b", f"users/{DEMO_USER}"], git_env, cwd=work)
    shutil.copytree(PADIM, work / "padim", ignore=shutil.ignore_patterns("__pycache__", "results", "mlruns"))
    _run(["git", "add", "padim"], git_env, cwd=work)
    _run(["git", "-c", "user.name=LeadersBoard demo", "-c", "user.email=demo@localhost", "commit", "-q", "-m",
          "PaDiM example"], git_env, cwd=work)
    result = subprocess.run(["git", "push", "origin", f"users/{DEMO_USER}"], cwd=work, env=git_env,
                            capture_output=True, text=True, check=False)
    remote = [line.rstrip() for line in result.stderr.splitlines() if line.startswith("remote:")]
    for line in remote:
        echo("    " + line)
    if result.returncode:
        raise DemoError("the push was rejected:\n" + "\n".join(remote or [result.stderr]))
    return [line.split(" job ", 1)[1].split()[0] for line in remote if " job " in line]


def _wait_healthy(port: int, server: subprocess.Popen[bytes], timeout: float = HEALTHY_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DemoError(f"the platform stopped (exit {server.returncode}); see serve.log in the instance")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as exc:  # 503 while Redis, MLflow or the worker is still starting
            last = _still_down(exc.read())
        except OSError:
            pass
        time.sleep(0.5)
    raise DemoError(f"the platform did not become healthy within {timeout:.0f} s ({last}); "
                    "see serve.log in the instance")


def _still_down(body: bytes) -> str:
    try:
        state = json.loads(body)
    except ValueError:
        return "no answer"
    down = [name for name in ("redis", "mlflow", "workers") if state.get(name) != "ok"]
    return "still starting: " + ", ".join(down) if down else "no answer"


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode:
        raise DemoError(f"{' '.join(args[:4])} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout
