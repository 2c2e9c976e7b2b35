"""Hostile input and dead dependencies: how long a refusal takes, and whether anyone else waits.

One instance served by `leadersboard serve` (no workers) over a Redis and an MLflow started here.
  uploads   each hostile upload below, sent 5 times while another client asks /healthz every
            50 ms: the upload's median answer time and status, and the slowest /healthz meanwhile
            (target: refused in under 2 s, /healthz under 1 s);
  outage    MLflow killed: the slowest of 20 `/healthz`, 20 `git ls-remote` (signing in included)
            and 5 uploads (target: each under 1 s; the upload a 503).

    .venv/bin/python benchmarks/hostile_input.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from leadersboard.local.datagen import generate_dataset
from leadersboard.local.mlflow_server import start_mlflow
from leadersboard.local.ports import free_port
from leadersboard.local.redis_server import start_redis

CLI = [sys.executable, "-m", "leadersboard.cli"]
MAIN = "def main():\n    pass\n"
CONFIG = "model: {}\ndata: {name: visa, init_args: {name: pcb1}}\ntrainer: {}\n"
ALIAS_BOMB = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{k}: &{k} [{', '.join(['*' + p] * 9)}]" for p, k in zip("abcdefgh", "bcdefghi", strict=True)),
])
HOSTILE: dict[str, dict[str, str]] = {
    "alias bomb in submission.yaml (442 bytes)": {"submission.yaml": ALIAS_BOMB},
    "YAML nested 5,000 deep in config.yaml": {"config.yaml": "x: " + "[" * 5000 + "]" * 5000},
    "4 MB literal in main.py": {"main.py": MAIN + "DATA = '" + "x" * (4 * 1024 * 1024) + "'\n"},
    "a tree 1,100 levels deep": {"a/" * 1100 + "x.py": "x = 1\n"},
    "a file named .git./x": {".git./x": "x"},
}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="leadersboard-hostile-") as tmp:
        root = Path(tmp)
        redis = start_redis(root / "redis", appendonly=False)
        mlflow = start_mlflow(root / "mlflow")
        env = {**os.environ, "LEADERSBOARD_HOME": str(root / "home"), "LEADERSBOARD_REDIS_URL": redis.url,
               "MLFLOW_TRACKING_URI": mlflow.url}
        subprocess.run([*CLI, "init"], env=env, check=True, capture_output=True)
        data = generate_dataset(root / "visa", layout="visa", categories=("pcb1",), normal=2, anomalous=1)
        subprocess.run([*CLI, "dataset", "add", "visa", str(data)], env=env, check=True, capture_output=True)
        token = subprocess.run([*CLI, "user", "add", "bench"], env=env, check=True, capture_output=True,
                               text=True).stdout.strip().splitlines()[-1]
        port = free_port()
        serve = subprocess.Popen([*CLI, "serve", "--api-port", str(port), "--web-port", str(free_port()),
                                  "--mlflow-port", str(free_port()), "--workers", "0"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: _status(f"{base}/healthz") == 200, "the platform did not become healthy")
            print(f"{'upload':44} {'answer':>7} {'median s':>9} {'slowest /healthz s':>19}")
            for name, files in HOSTILE.items():
                codes, seconds, health = _hostile(base, token, {"main.py": MAIN, "config.yaml": CONFIG, **files})
                print(f"{name:44} {'/'.join(sorted(codes)):>7} {statistics.median(seconds):9.3f} {health:19.3f}")
            mlflow.stop()
            _wait(lambda: _status(f"{base}/healthz") == 503, "healthz did not notice MLflow was gone")
            url = f"http://bench:{token}@127.0.0.1:{port}/git/submissions.git"
            print("\nMLflow killed (slowest of the runs):")
            print(f"  /healthz       {max(_timed(lambda: _status(f'{base}/healthz')) for _ in range(20)):.3f} s")
            print(f"  git ls-remote  {max(_timed(lambda: _ls_remote(url)) for _ in range(20)):.3f} s")
            answers: list[int] = []
            slowest = max(_timed(lambda: answers.append(_upload(base, token, {"main.py": MAIN,
                                                                              "config.yaml": CONFIG})))
                          for _ in range(5))
            print(f"  upload         {slowest:.3f} s (answers {sorted(set(answers))})")
        finally:
            serve.terminate()
            serve.wait(120)
            mlflow.stop()
            redis.stop()
    return 0


def _hostile(base: str, token: str, files: dict[str, str]) -> tuple[set[str], list[float], float]:
    """Five uploads of `files` while /healthz is asked every 50 ms: codes, upload times, slowest /healthz."""
    stop, health = threading.Event(), [0.0]

    def ask() -> None:
        while not stop.is_set():
            health[0] = max(health[0], _timed(lambda: _status(f"{base}/healthz")))
            stop.wait(0.05)

    asking = threading.Thread(target=ask)
    asking.start()
    codes: list[int] = []
    seconds = [_timed(lambda: codes.append(_upload(base, token, files))) for _ in range(5)]
    stop.set()
    asking.join()
    return {str(code) for code in codes}, seconds, health[0]


def _upload(base: str, token: str, files: dict[str, str]) -> int:
    parts = [("files", (name, text.encode())) for name, text in files.items()]
    return httpx.post(f"{base}/submissions", files=parts, headers={"Authorization": f"Bearer {token}"},
                      timeout=120).status_code


def _ls_remote(url: str) -> None:
    subprocess.run(["git", "ls-remote", url], capture_output=True, timeout=60, check=True,
                   env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=30).status_code
    except httpx.HTTPError:
        return 0


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _wait(condition: Callable[[], bool], failure: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(failure)
        time.sleep(0.3)


if __name__ == "__main__":
    raise SystemExit(main())
