"""The unconfined process executor's end of a job: real processes, no worker."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

from leadersboard.runner.processes import JOB_ENV
from leadersboard.runner.sandbox import Outcome, Sandbox
from leadersboard.runner.unconfined import run_unconfined

from support.platform import processes_with

# Leaves a process behind, in a session of its own, that holds the job's output open.
LEAVES_A_DAEMON = """import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)  # {marker}"], start_new_session=True)
print("main done", flush=True)
"""


def _run(tmp_path: Path, code: str, timeout: float) -> tuple[Outcome, bytes, float]:
    scratch = tmp_path / "scratch"
    (scratch / "work").mkdir(parents=True)
    (scratch / "work" / "main.py").write_text(code)
    sandbox = Sandbox(scratch=scratch, command=[sys.executable, "main.py"], timeout_seconds=timeout,
                      env={"PATH": "/usr/bin:/bin", JOB_ENV: uuid.uuid4().hex})
    output: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        output.append(chunk)

    start = time.monotonic()
    outcome = asyncio.run(run_unconfined(sandbox, collect, isolate_network=False))
    return outcome, b"".join(output), time.monotonic() - start


def test_the_job_ends_when_its_main_process_exits(tmp_path: Path) -> None:
    marker = f"lb-daemon-{uuid.uuid4().hex}"
    outcome, output, seconds = _run(tmp_path, LEAVES_A_DAEMON.format(marker=marker), timeout=60)
    assert (outcome.exit_code, outcome.timed_out) == (0, False)
    assert b"main done" in output
    assert seconds < 20, "the job waited for the process it left behind"
    deadline = time.monotonic() + 5  # SIGKILL was sent; the process goes a moment later
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == [], "the process left behind outlived its job"


def test_output_until_the_exit_is_kept(tmp_path: Path) -> None:
    code = "import sys\nfor n in range(20000):\n    print(f'line {n}')\nsys.exit(3)\n"
    outcome, output, _ = _run(tmp_path, code, timeout=60)
    assert outcome.exit_code == 3
    assert output.decode().splitlines()[-1] == "line 19999"


def test_a_job_that_runs_too_long_times_out(tmp_path: Path) -> None:
    outcome, _, seconds = _run(tmp_path, "import time\ntime.sleep(60)\n", timeout=1)
    assert outcome.timed_out and outcome.exit_code is None
    assert seconds < 15
