"""`leadersboard demo`: the product's main job on its embedded default.

A throw-away instance, a generated VisA-like data set, the platform started, the example
submission pushed with the real git client, and the job followed to its end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .redis_server import free_port

EXAMPLE = Path(__file__).resolve().parent / "examples" / "padim"
DEMO_USER = "demo"

Echo = Callable[[str], None]


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


def run_demo(echo: Echo, home: Path | None = None) -> Path:
    """Run the demo; returns the instance folder it used."""
    home = home or Path(tempfile.mkdtemp(prefix="leadersboard-demo-"))
    env = {**os.environ, "LEADERSBOARD_HOME": str(home)}
    env.pop("LEADERSBOARD_REDIS_URL", None)
    cli = [sys.executable, "-m", "leadersboard.cli"]

    echo(f"1/5 instance in {home}")
    _run([*cli, "init"], env)
    echo("2/5 generating a small VisA-like data set (pcb1: normal, anomalous, masks)")
    from .datagen import generate_dataset

    data = generate_dataset(home / "datasets" / "visa", layout="visa", categories=("pcb1",))
    _run([*cli, "dataset", "add", "visa", str(data)], env)
    token = _run([*cli, "user", "add", DEMO_USER], env).strip().splitlines()[-1]

    port = free_port()
    echo(f"3/5 starting the platform on http://127.0.0.1:{port}")
    server = subprocess.Popen([*cli, "serve", "--api-port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(home / "serve.log", "wb"))  # noqa: SIM115
    try:
        _wait_healthy(port, server)
        echo("4/5 pushing examples/padim with git")
        job_ids = _push_example(home, port, token, echo)
        echo(f"5/5 submission queued: job {', '.join(job_ids)}")
    finally:
        server.terminate()
        server.wait(30)
    return home


def _push_example(home: Path, port: int, token: str, echo: Echo) -> list[str]:
    work = home / "work"
    url = f"http://{DEMO_USER}:{token}@127.0.0.1:{port}/git/submissions.git"
    git_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    _run(["git", "clone", "-q", url, str(work)], git_env)
    _run(["git", "checkout", "-q", "-b", f"users/{DEMO_USER}"], git_env, cwd=work)
    shutil.copytree(EXAMPLE, work / "padim", ignore=shutil.ignore_patterns("__pycache__", "results", "mlruns"))
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


def _wait_healthy(port: int, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DemoError(f"the platform stopped (exit {server.returncode}); see serve.log in the instance")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise DemoError("the platform did not become healthy in time")


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode:
        raise DemoError(f"{' '.join(args[:4])} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout
