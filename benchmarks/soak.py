"""Soak: submissions from many users at the rate limit while Redis, MLflow and workers are killed.

One instance served by `leadersboard serve` (process executor, real jobs that sleep a little and log
an AUROC). Each user pushes with git and uploads through the API, alternately, as fast as the limits
let them (10 an hour, 3 active by default), for the whole run. Every `--fault-every` seconds (with
jitter) one of these is killed with SIGKILL:
  redis    the instance's Redis (an operator's external one, started again a moment later on the
           same port, password and append-only file, as a service manager would);
  mlflow   the tracking server that serve supervises (serve starts it again);
  worker   a worker that serve supervises (serve starts it again; its job runs again).
After the run no new submission is made and no fault injected; the script waits for every admitted
job to end, then checks:
  - no admitted job is lost: each one is known to the API and reaches completed/failed/cancelled;
  - each job ended by its deadline + 60 s (deadline: its last start + the job time limit);
  - every user's active-slot count is back at zero.
Prints the counts and the worst times; exits 1 when a check fails.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--users 10] [--fault-every 180] [--workers 2]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import redis
import yaml

from leadersboard.contract import active_key
from leadersboard.local.datagen import generate_dataset
from leadersboard.local.ports import free_port
from leadersboard.local.redis_server import start_redis

CLI = [sys.executable, "-m", "leadersboard.cli"]
TERMINAL = ("completed", "failed", "cancelled")
MAIN = '''import random
import time

import mlflow


def main():
    time.sleep(random.uniform({low}, {high}))
    with mlflow.start_run():
        mlflow.log_metric("auroc", random.uniform(0.5, 1.0))


if __name__ == "__main__":
    main()
'''
CONFIG = "model: {}\ndata: {name: visa, init_args: {name: pcb1}}\ntrainer: {}\n"


@dataclass
class Admitted:
    user: str
    job_id: str
    way: str  # push or upload
    at: float
    ended_at: float | None = None
    job: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tally:
    """What the users saw, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    admitted: list[Admitted] = field(default_factory=list)
    refusals: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)

    def refused(self, why: str) -> None:
        with self.lock:
            self.refusals[why] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fault-every", type=float, default=180, help="seconds between faults, on average")
    parser.add_argument("--job-seconds", default="2-10", help="how long a job sleeps: LOW-HIGH")
    parser.add_argument("--quick-upkeep", action="store_true",
                        help="heartbeat and reconciler every second (the default is the product's)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    low, high = (float(x) for x in args.job_seconds.split("-"))
    with tempfile.TemporaryDirectory(prefix="leadersboard-soak-") as tmp:
        return Soak(Path(tmp), args, MAIN.format(low=low, high=high)).run()


class Soak:
    def __init__(self, root: Path, args: argparse.Namespace, main_py: str) -> None:
        self.root, self.args, self.main_py = root, args, main_py
        self.home = root / "home"
        self.env = {**os.environ, "LEADERSBOARD_HOME": str(self.home)}
        self.tally = Tally()
        self.stop_submitting = threading.Event()
        self.tokens: dict[str, str] = {}
        self.job_limit = 120

    # ------------------------------------------------------------------------------------------ set-up

    def run(self) -> int:
        self._make_instance()
        self.redis = start_redis(self.root / "redis")  # appendonly: queued jobs survive its restarts
        self.env.update(LEADERSBOARD_REDIS_URL=self.redis.url)
        self.port = free_port()
        log = (self.root / "serve.log").open("wb")
        self.serve = subprocess.Popen([*CLI, "serve", "--api-port", str(self.port), "--web-port", str(free_port()),
                                       "--mlflow-port", str(free_port()), "--workers", str(self.args.workers)],
                                      env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_healthy(180)
            started = time.monotonic()
            users = [threading.Thread(target=self._user, args=(name,), daemon=True) for name in self.tokens]
            for thread in users:
                thread.start()
            self._inject_faults(started + self.args.minutes * 60)
            self.stop_submitting.set()
            for thread in users:
                thread.join(120)
            self._drain(started)
            return self._report(time.monotonic() - started)
        finally:
            self.serve.send_signal(signal.SIGTERM)
            try:
                self.serve.wait(180)
            except subprocess.TimeoutExpired:
                self.serve.kill()
            self.redis.stop()
            log.close()
            tail = (self.root / "serve.log").read_text(errors="replace")[-1500:]
            print(f"--- serve.log (tail) ---\n{tail}", file=sys.stderr)

    def _make_instance(self) -> None:
        self._cli("init")
        document = yaml.safe_load((self.home / "leadersboard.yaml").read_text())
        document["limits"]["job_timeout_seconds"] = self.job_limit
        if self.args.quick_upkeep:
            document["runner"].update(heartbeat_seconds=1, reconcile_seconds=1, stop_grace_seconds=1)
        (self.home / "leadersboard.yaml").write_text(yaml.safe_dump(document))
        data = generate_dataset(self.root / "visa", layout="visa", categories=("pcb1",), normal=4, anomalous=2)
        self._cli("dataset", "add", "visa", str(data))
        for n in range(self.args.users):
            self.tokens[f"soak{n}"] = self._cli("user", "add", f"soak{n}").strip().splitlines()[-1]

    def _cli(self, *args: str) -> str:
        return subprocess.run([*CLI, *args], env=self.env, capture_output=True, text=True, check=True).stdout

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.serve.poll() is not None:
                raise SystemExit(f"serve exited with {self.serve.returncode}; see its log above")
            if self._health().get("status") == "ok":
                return
            time.sleep(0.5)
        raise SystemExit("the platform did not become healthy")

    def _health(self) -> dict[str, Any]:
        try:
            body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body

    # ------------------------------------------------------------------------------------------- users

    def _user(self, name: str) -> None:
        """Submit as fast as the limits allow: a push, then an upload, and so on."""
        clone = self.root / "clones" / name
        url = f"http://{name}:{self.tokens[name]}@127.0.0.1:{self.port}/git/submissions.git"
        self._git(self.root, "clone", "-q", url, str(clone))
        self._git(clone, "checkout", "-q", "-b", f"users/{name}")
        for n in range(10**6):
            if self.stop_submitting.is_set():
                return
            job_id = self._push(name, clone, n) if n % 2 == 0 else self._upload(name, n)
            if job_id:
                with self.tally.lock:
                    self.tally.admitted.append(Admitted(name, job_id, "push" if n % 2 == 0 else "upload",
                                                        time.monotonic()))
            self.stop_submitting.wait(1 if job_id else 5)

    def _push(self, name: str, clone: Path, n: int) -> str | None:
        if self._has_remote(clone, name):  # uploads commit on the branch too: start from its tip
            self._git(clone, "fetch", "-q", "origin")
            self._git(clone, "reset", "-q", "--hard", f"origin/users/{name}")
        folder = clone / f"s{n}"
        folder.mkdir()
        (folder / "main.py").write_text(self.main_py)
        (folder / "config.yaml").write_text(CONFIG)
        self._git(clone, "add", "-A")
        self._git(clone, "-c", "user.name=soak", "-c", "user.email=soak@localhost", "commit", "-q", "-m", f"s{n}")
        pushed = subprocess.run(["git", "push", "origin", f"users/{name}"], cwd=clone, capture_output=True,
                                text=True, timeout=120, check=False, env=self._git_env())
        if pushed.returncode == 0:
            ids = [line.split(" job ", 1)[1].split()[0] for line in pushed.stderr.splitlines() if " job " in line]
            return ids[0] if ids else None
        self.tally.refused("push: " + _push_refusal(pushed.stderr))
        return None

    def _upload(self, name: str, n: int) -> str | None:
        files = [("files", ("main.py", self.main_py.encode())), ("files", ("config.yaml", CONFIG.encode()))]
        try:
            answer = httpx.post(f"http://127.0.0.1:{self.port}/submissions", files=files, data={"folder": f"u{n}"},
                                headers={"Authorization": f"Bearer {self.tokens[name]}"}, timeout=60)
        except httpx.HTTPError as exc:
            self.tally.refused(f"upload: {type(exc).__name__}")
            return None
        if answer.status_code == 201:
            job_id: str | None = answer.json()["job_id"]
            return job_id
        self.tally.refused(f"upload: {answer.status_code}")
        return None

    def _has_remote(self, clone: Path, name: str) -> bool:
        return subprocess.run(["git", "rev-parse", "-q", "--verify", f"origin/users/{name}"], cwd=clone,
                              capture_output=True, check=False).returncode == 0

    def _git(self, cwd: Path, *args: str) -> None:
        subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True, timeout=120, env=self._git_env())

    def _git_env(self) -> dict[str, str]:
        return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}

    # ------------------------------------------------------------------------------------------ faults

    def _inject_faults(self, until: float) -> None:
        while True:
            pause = random.uniform(0.5, 1.5) * self.args.fault_every
            if time.monotonic() + pause > until:
                time.sleep(max(0.0, until - time.monotonic()))
                return
            time.sleep(pause)
            target = random.choice(["redis", "mlflow", "worker"])
            if target == "redis":
                self._kill_redis()
            else:
                supervised = self._health().get("supervised", {})
                names = [n for n in supervised if n.startswith(target)]  # "mlflow", "worker 0", ...
                pid = supervised[random.choice(names)].get("pid") if names else None
                if not pid:
                    continue
                os.kill(pid, signal.SIGKILL)
            self.tally.faults[target] += 1
            print(f"{time.strftime('%H:%M:%S')} killed {target}", flush=True)

    def _kill_redis(self) -> None:
        self.redis.process.kill()
        self.redis.process.wait()
        time.sleep(random.uniform(1, 3))  # the service manager's restart delay
        old = self.redis
        self.redis = start_redis(self.root / "redis", port=old.port, password=old.password)

    # ----------------------------------------------------------------------------------------- results

    def _drain(self, started: float) -> None:
        """Follow every admitted job until it ends (or clearly never will)."""
        waiting = list(self.tally.admitted)
        give_up = time.monotonic() + max(600, len(waiting) * 30 / max(1, self.args.workers))
        told = time.monotonic()
        while waiting and time.monotonic() < give_up:
            if time.monotonic() - told > 30:
                told = time.monotonic()
                seen = [(job.job_id[:12], job.job.get("status", "?")) for job in waiting]
                print(f"{time.strftime('%H:%M:%S')} waiting for {len(waiting)} job(s): {seen[:10]}", flush=True)
            for job in list(waiting):
                status = self._status(job)
                if status.get("status") in TERMINAL:
                    job.ended_at, job.job = time.monotonic(), status
                    waiting.remove(job)
                elif status:
                    job.job = status
            time.sleep(1)

    def _status(self, job: Admitted) -> dict[str, Any]:
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}/jobs/{job.job_id}/status", timeout=10,
                               headers={"Authorization": f"Bearer {self.tokens[job.user]}"})
        except httpx.HTTPError:
            return {}
        if answer.status_code != 200:
            return {"status": f"HTTP {answer.status_code}"}  # not terminal: followed on, and shown while waited for
        body: dict[str, Any] = answer.json()
        return body

    def _report(self, seconds: float) -> int:
        jobs = self.tally.admitted
        ended = [j for j in jobs if j.ended_at is not None]
        lost = [j for j in jobs if j.ended_at is None]
        late = [j for j in ended if _overrun(j, self.job_limit) > 60]
        statuses = collections.Counter(j.job["status"] for j in ended)
        reasons = collections.Counter((j.job.get("error") or "")[:90] for j in ended if j.job["status"] != "completed")
        client = redis.Redis.from_url(self.redis.url)
        slots = {user: cast(int, client.zcard(active_key(user))) for user in self.tokens}  # sync client: an int
        client.close()
        worst = max((j.ended_at - j.at for j in ended if j.ended_at is not None), default=0.0)
        print(f"\nran {seconds / 60:.1f} min, {self.args.users} users, {self.args.workers} workers")
        print(f"faults injected: {dict(self.tally.faults)}")
        print(f"admitted jobs: {len(jobs)} ({sum(j.way == 'push' for j in jobs)} pushed, "
              f"{sum(j.way == 'upload' for j in jobs)} uploaded); refused: {dict(self.tally.refusals)}")
        print(f"ended: {dict(statuses)}; ran more than once: {sum(j.job.get('attempts', 0) > 1 for j in ended)}")
        for reason, count in reasons.most_common():
            print(f"  {count} x {reason}")
        print(f"lost: {len(lost)} {[(j.job_id, j.job.get('status')) for j in lost][:10]}")
        print(f"worst admission to end: {worst:.1f} s; worst overrun of deadline: "
              f"{max((_overrun(j, self.job_limit) for j in ended), default=0):.1f} s (allowed 60); late: {len(late)}")
        print(f"active slots at the end: {sum(slots.values())} {({u: n for u, n in slots.items() if n})}")
        return 1 if lost or late or any(slots.values()) or not jobs else 0


def _overrun(job: Admitted, limit: int) -> float:
    """Seconds past the job's deadline (its last start + the time limit) at which it was seen ended."""
    started, finished = job.job.get("started_at"), job.job.get("finished_at")
    if not started or not finished:
        return 0.0
    return (_stamp(finished) - _stamp(started)) - limit


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _push_refusal(stderr: str) -> str:
    """The rule a rejected push names (`[rate-limit]`, ...) or what stopped it."""
    for line in stderr.splitlines():
        text = line.removeprefix("remote:").strip()
        if text.startswith("[") and "]" in text:
            return text[1:text.index("]")]
        if "not answering" in text:
            return "outage"
    return stderr.strip().splitlines()[-1][:60] if stderr.strip() else "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
