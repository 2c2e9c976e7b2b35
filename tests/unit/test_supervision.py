"""What keeps `serve`'s children alive and ends them with it: the supervisor, the instance lock and
its record, the guardian. Real processes (`sleep`), killed for real."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from leadersboard.cli.guardian import start_guardian
from leadersboard.cli.instance_lock import InstanceBusy, InstanceLock
from leadersboard.cli.leftovers import MARK_ENV, end_leftovers, marked_processes, new_mark, start_time
from leadersboard.cli.supervisor import Backoff, Supervisor

BACKOFF = Backoff(first=0.2, poll=0.05)  # serve's back-off, in steps short enough for a test


@dataclass
class Sleeper:
    """A child like serve's: a process group of its own; here a shell that also starts a grandchild."""

    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, env: dict[str, str] | None = None) -> Sleeper:
        return cls(subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300"], start_new_session=True,
                                    env={**os.environ, **(env or {})}))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def wait_for(condition: Callable[[], object], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != b"Z":
                pids.append(int(entry.name))
    return pids


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor(backoff=BACKOFF)
    yield sup
    sup.stop()


def test_a_dead_child_is_started_again_and_its_group_ended(supervisor: Supervisor) -> None:
    first = supervisor.keep("sleeper", Sleeper.start)
    wait_for(lambda: len(group_members(first.process.pid)) >= 2)  # the shell and its children
    os.kill(first.process.pid, signal.SIGKILL)  # the leader only: the grandchild lives on in the group

    wait_for(lambda: supervisor.status()["sleeper"]["restarts"] == 1)
    status = supervisor.status()["sleeper"]
    assert status["state"] == "up" and status["last_exit"] == "was killed by SIGKILL"
    assert status["pid"] != first.process.pid and status["last_restart"]
    assert group_members(first.process.pid) == [], "the dead child's group was left running"


def test_restarts_back_off(supervisor: Supervisor) -> None:
    starts: list[float] = []

    def start() -> Sleeper:
        starts.append(time.monotonic())
        return Sleeper(subprocess.Popen(["true"], start_new_session=True))  # dies at once, every time

    supervisor.keep("flapping", start)
    wait_for(lambda: len(starts) >= 4, seconds=30)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8, gaps  # doubling


def test_serves_back_off_doubles_from_a_second_up_to_a_minute() -> None:
    steps = [Backoff().first]
    while len(steps) < 8:
        steps.append(Backoff().after(steps[-1]))
    assert steps == [1, 2, 4, 8, 16, 32, 60, 60]
    assert Supervisor().backoff == Backoff()  # what serve's supervisor uses


def test_nothing_is_restarted_after_stop(supervisor: Supervisor) -> None:
    children = [supervisor.keep("a", Sleeper.start), supervisor.keep("b", Sleeper.start)]
    supervisor.stop()
    assert all(child.process.poll() is not None for child in children)
    assert {status["state"] for status in supervisor.status().values()} == {"stopped"}
    time.sleep(10 * BACKOFF.poll + BACKOFF.first)  # long enough for a restart, had one been due
    assert all(status["restarts"] == 0 for status in supervisor.status().values())


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    lock = InstanceLock.acquire(tmp_path / "run")
    lock.hold(new_mark())
    with pytest.raises(InstanceBusy, match=f"pid {os.getpid()}"):
        InstanceLock.acquire(tmp_path / "run")
    lock.release()
    again = InstanceLock.acquire(tmp_path / "run")
    assert again.left_by is None  # a clean stop leaves no record
    again.release()


def test_a_lock_whose_holder_died_is_free_and_says_what_was_left(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = subprocess.run(
        [sys.executable, "-c", "import os, sys; from pathlib import Path\n"
         "from leadersboard.cli.instance_lock import InstanceLock\n"
         "lock = InstanceLock.acquire(Path(sys.argv[1])); lock.hold('m' * 24); lock.started('x', os.getpid())\n"
         "os._exit(0)  # no release: as if killed", str(run)], check=True)
    assert holder.returncode == 0
    lock = InstanceLock.acquire(run)
    try:
        assert lock.left_by is not None and lock.left_by["mark"] == "m" * 24 and "x" in lock.left_by["groups"]
    finally:
        lock.release()


def test_leftovers_are_ended_by_mark_and_by_group_never_a_reused_pid() -> None:
    mark = new_mark()
    marked = Sleeper.start({MARK_ENV: mark})  # found by the mark
    grouped = Sleeper.start()  # found by its recorded group
    stranger = Sleeper.start()  # recorded with another start time: a reused pid, to be left alone
    try:
        wait_for(lambda: len(marked_processes(mark)) >= 2)
        groups = {"grouped": [grouped.process.pid, start_time(grouped.process.pid)],
                  "stranger": [stranger.process.pid, (start_time(stranger.process.pid) or 0) - 1]}
        assert end_leftovers(mark, groups) >= 3
        wait_for(lambda: marked.process.poll() is not None and grouped.process.poll() is not None)
        assert marked_processes(mark) == []
        assert stranger.process.poll() is None
    finally:
        for sleeper in (marked, grouped, stranger):
            sleeper.stop()


def test_the_guardian_ends_what_serve_started_once_serve_is_gone(tmp_path: Path) -> None:
    """A stand-in for serve starts the guardian and a marked child, then dies by SIGKILL."""
    mark, run = new_mark(), tmp_path / "run"
    run.mkdir()
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import os, subprocess, sys, time; from pathlib import Path\n"
         "from leadersboard.cli.guardian import start_guardian\n"
         "start_guardian(os.environ['LEADERSBOARD_SERVE_MARK'], Path(sys.argv[1]))\n"
         "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
         "print('ready', flush=True); time.sleep(300)", str(run)],
        env={**os.environ, MARK_ENV: mark}, stdout=subprocess.PIPE)
    assert stand_in.stdout is not None
    with stand_in.stdout:
        assert stand_in.stdout.readline() == b"ready\n"
    wait_for(lambda: len(marked_processes(mark)) == 3)  # the stand-in, the guardian, the sleeper
    stand_in.kill()
    stand_in.wait()
    wait_for(lambda: marked_processes(mark) == [])


def test_the_guardian_kills_nothing_after_a_clean_stop(tmp_path: Path) -> None:
    mark = new_mark()
    bystander = Sleeper.start({MARK_ENV: new_mark()})  # another serve's
    guardian = start_guardian(mark, tmp_path)
    try:
        guardian.stop()
        assert guardian.process.returncode == 0
        assert bystander.process.poll() is None
    finally:
        bystander.stop()
