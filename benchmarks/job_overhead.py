"""Job overhead and dispatch latency of the worker, with the process executor or the docker one.

For one small submission that only uses MLflow:
  bare       `python main.py` in a scratch folder with a local sqlite MLFLOW_TRACKING_URI;
  platform   from the push being accepted to the job's result being in MLflow (completed);
  dispatch   from the job's enqueue (arq's enqueue_time) to the submission's process start
             (the first thing main.py does is note the time), with an idle worker.
Prints medians over --runs, the difference platform - bare (target <= 2 s), the ratio, and the
dispatch latency (target <= 1 s).

    .venv/bin/python benchmarks/job_overhead.py [--runs 5] [--executor docker [--image NAME]]

With the docker executor, "bare" is still `python main.py` on the host: the overhead then includes
the container's start and removal (the image must exist: `leadersboard image build`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from arq.connections import RedisSettings, create_pool
from arq.jobs import Job
from mlflow.tracking import MlflowClient

from leadersboard.local.mlflow_server import start_mlflow
from leadersboard.local.ports import free_port
from leadersboard.local.redis_server import start_redis

MAIN = '''import time
STARTED = time.time()  # before anything else: the dispatch benchmark reads it

import mlflow


def main():
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        mlflow.log_metric("process_start_unix", STARTED)
        mlflow.log_param("run", "{n}")
        mlflow.log_metric("auroc", 0.9)
        mlflow.log_metric("f1_score", 0.8)


if __name__ == "__main__":
    main()
'''
CONFIG = "model: {class_path: x}\ndata: {name: visa, init_args: {name: pcb1}}\ntrainer: {}\n"
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def bare_run(root: Path, n: int) -> float:
    work = root / f"bare-{n}"
    work.mkdir()
    (work / "main.py").write_text(MAIN.replace("{n}", str(n)))
    env = {**os.environ, **QUIET, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    start = time.perf_counter()
    run(sys.executable, "main.py", cwd=work, env=env)
    return time.perf_counter() - start


def wait_finished(client: MlflowClient, job_id: str, timeout: float = 120) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for e in client.search_experiments() for r in client.search_runs(
            [e.experiment_id], f"tags.`leadersboard.job_id` = '{job_id}'")]
        if runs and runs[0].data.tags.get("leadersboard.status") not in (None, "pending", "running"):
            if runs[0].data.tags["leadersboard.status"] != "completed":
                raise SystemExit(f"job {job_id} ended {runs[0].data.tags['leadersboard.status']}: "
                                 f"{runs[0].data.tags.get('leadersboard.error')}")
            return dict(runs[0].data.metrics)
        time.sleep(0.05)
    raise SystemExit(f"job {job_id} did not finish in {timeout} s")


async def enqueue_time(redis_url: str, job_id: str, queue: str) -> float:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        info = await Job(job_id, pool, _queue_name=queue).info()
        assert info is not None, "arq has no record of the job"
        return info.enqueue_time.timestamp()
    finally:
        await pool.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--executor", choices=("process", "docker"), default="process")
    parser.add_argument("--image", default="leadersboard-sandbox", help="the docker executor's image")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lb-bench-job-") as tmp:
        root = Path(tmp)
        home = root / "home"
        env = {**os.environ, **QUIET, "LEADERSBOARD_HOME": str(home)}
        cli = [sys.executable, "-m", "leadersboard.cli"]
        run(*cli, "init", env=env)
        config = yaml.safe_load((home / "leadersboard.yaml").read_text())
        config["limits"].update(submissions_per_hour=10_000, max_active_jobs=10_000)
        config["runner"].update(executor=args.executor, docker_image=args.image)
        (root / "data" / "pcb1").mkdir(parents=True)
        config["datasets"] = {"visa": str(root / "data")}
        (home / "leadersboard.yaml").write_text(yaml.safe_dump(config))
        token = run(*cli, "user", "add", "bench", env=env).strip().splitlines()[-1]
        redis = start_redis(root / "redis", appendonly=False)
        mlflow = start_mlflow(root / "mlflow")
        port = free_port()
        env.update(LEADERSBOARD_REDIS_URL=redis.url, MLFLOW_TRACKING_URI=mlflow.url)
        server = subprocess.Popen([*cli, "serve", "--api-port", str(port), "--web-port", str(free_port()),
                                   "--mlflow-port", str(free_port()), "--workers", "1"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("server did not become healthy") from None
                    time.sleep(0.2)
            work = root / "clone"
            git_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
            run("git", "clone", "-q", f"http://bench:{token}@127.0.0.1:{port}/git/submissions.git", str(work),
                env=git_env)
            run("git", "checkout", "-q", "-b", "users/bench", cwd=work)
            (work / "tiny").mkdir()
            (work / "tiny" / "config.yaml").write_text(CONFIG)
            client = MlflowClient(tracking_uri=mlflow.url)
            bare, platform, dispatch = [], [], []
            for n in range(args.runs + 1):  # the first round warms caches and is not counted
                bare_time = bare_run(root, n)
                (work / "tiny" / "main.py").write_text(MAIN.replace("{n}", str(n)))
                run("git", "add", "-A", cwd=work)
                run("git", "-c", "user.name=b", "-c", "user.email=b@example.org", "commit", "-q", "-m", str(n),
                    cwd=work)
                pushed = subprocess.run(["git", "push", "origin", "users/bench"], cwd=work, env=git_env,
                                        capture_output=True, text=True, check=True)
                accepted = time.perf_counter()
                job_id = next(line.split(" job ", 1)[1].split()[0] for line in pushed.stderr.splitlines()
                              if " job " in line)
                metrics = wait_finished(client, job_id)
                platform_time = time.perf_counter() - accepted
                queued_at = asyncio.run(enqueue_time(redis.url, job_id, "leadersboard:queue"))
                if n:
                    bare.append(bare_time)
                    platform.append(platform_time)
                    dispatch.append(metrics["process_start_unix"] - queued_at)
        finally:
            server.terminate()
            server.wait(60)
            mlflow.stop()
            redis.stop()
    b, p, d = statistics.median(bare), statistics.median(platform), statistics.median(dispatch)
    print(f"runs:                               {args.runs} ({args.executor} executor)")
    print(f"bare python main.py:                {b:6.2f} s")
    print(f"push accepted -> result in MLflow:  {p:6.2f} s")
    print(f"overhead (platform - bare):         {p - b:6.2f} s  (target <= 2 s)")
    print(f"ratio platform / bare:              {p / b:6.2f}")
    print(f"dispatch, enqueue -> process start: {d:6.2f} s  (target <= 1 s; includes python start-up)")


if __name__ == "__main__":
    main()
