"""Push overhead of the hooks: median wall time of `git push` of a one-file change.

Two instances served the same way (`leadersboard serve`, same machine, same run):
  hooks     the real instance: pre-receive checks every rule and admits in Redis, post-receive
            records the submission, creates its job (an MLflow run on a real tracking server) and
            queues it;
  no hooks  the same server over a repository whose hooks were removed (plain git http-backend).
Prints both medians and their ratio (target: ratio <= 1.5).

    .venv/bin/python benchmarks/push_overhead.py [--pushes 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from leadersboard.local.mlflow_server import start_mlflow
from leadersboard.local.ports import free_port
from leadersboard.local.redis_server import start_redis

MAIN = "def main():\n    print({n})\n"
CONFIG = "model: {class_path: x}\ndata: {name: visa, init_args: {name: pcb1}}\ntrainer: {}\n"


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def make_instance(root: Path, hooks: bool) -> tuple[Path, str]:
    home = root / ("hooks" if hooks else "plain")
    cli = [sys.executable, "-m", "leadersboard.cli"]
    env = {**os.environ, "LEADERSBOARD_HOME": str(home)}
    run(*cli, "init", env=env)
    config = yaml.safe_load((home / "leadersboard.yaml").read_text())
    config["limits"].update(submissions_per_hour=100_000, max_active_jobs=100_000)
    (root / "data" / "pcb1").mkdir(parents=True, exist_ok=True)
    config["datasets"] = {"visa": str(root / "data")}
    (home / "leadersboard.yaml").write_text(yaml.safe_dump(config))
    token = run(*cli, "user", "add", "bench", env=env).strip().splitlines()[-1]
    if not hooks:
        for name in ("pre-receive", "post-receive"):
            (home / "submissions.git" / "hooks" / name).unlink()
    return home, token


def serve(home: Path, redis_url: str, mlflow_url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "LEADERSBOARD_HOME": str(home), "LEADERSBOARD_REDIS_URL": redis_url,
           "MLFLOW_TRACKING_URI": mlflow_url}
    # No workers: the benchmark measures the push, not the jobs it queues.
    command = [sys.executable, "-m", "leadersboard.cli", "serve", "--api-port", str(port), "--web-port",
               str(free_port()), "--mlflow-port", str(free_port()), "--workers", "0"]
    proc = subprocess.Popen(command,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def clone(root: Path, name: str, port: int, token: str) -> Path:
    work = root / f"work-{name}"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    run("git", "clone", "-q", f"http://bench:{token}@127.0.0.1:{port}/git/submissions.git", str(work), env=env)
    run("git", "checkout", "-q", "-b", "users/bench", cwd=work)
    (work / "model").mkdir()
    (work / "model" / "config.yaml").write_text(CONFIG)
    return work


def timed_push(work: Path, n: int) -> float:
    (work / "model" / "main.py").write_text(MAIN.format(n=n))
    run("git", "add", "-A", cwd=work)
    run("git", "-c", "user.name=b", "-c", "user.email=b@example.org", "commit", "-q", "-m", f"change {n}", cwd=work)
    start = time.perf_counter()
    run("git", "push", "-q", "origin", "users/bench", cwd=work)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        root = Path(tmp)
        redis = start_redis(root / "redis", appendonly=False)
        mlflow = start_mlflow(root / "mlflow")
        servers = []
        try:
            works = {}
            for hooks in (True, False):
                home, token = make_instance(root, hooks)
                proc, port = serve(home, redis.url, mlflow.url)
                servers.append(proc)
                works[hooks] = clone(root, "hooks" if hooks else "plain", port, token)
            times: dict[bool, list[float]] = {True: [], False: []}
            for hooks in (True, False):  # warm-up push each (first push creates the branch)
                timed_push(works[hooks], 0)
            for n in range(1, args.pushes + 1):  # interleaved, so drift hits both alike
                for hooks in (True, False):
                    times[hooks].append(timed_push(works[hooks], n))
        finally:
            for proc in servers:
                proc.terminate()
                proc.wait(10)
            mlflow.stop()
            redis.stop()
    with_hooks = statistics.median(times[True]) * 1000
    plain = statistics.median(times[False]) * 1000
    print(f"pushes per side:              {args.pushes}")
    print(f"median push, full hooks:      {with_hooks:7.1f} ms")
    print(f"median push, no hooks:        {plain:7.1f} ms")
    print(f"ratio hooks / no hooks:       {with_hooks / plain:7.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
