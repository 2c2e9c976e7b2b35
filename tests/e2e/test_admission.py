"""Accepted pushes and admission: the job lines, push options, replayed events, the hourly limit and
the active-jobs cap, sequentially and under parallel pushes (real git, real server, real Redis)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
import redis
from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from leadersboard.contract import hourly_key
from leadersboard.jobs import JobStore
from leadersboard.local.redis_server import RedisServer
from leadersboard.settings import Settings
from leadersboard.submissions import SubmissionStore
from leadersboard.webhook.intake.intake import Intake

from support.folders import BAD_FOLDERS
from support.git import GitClient, remote_lines
from support.instances import Instance, create_instance, submission_files
from support.servers import Server, running_server

JOB_LINE = re.compile(
    r"LeadersBoard: (?P<folder>\S+): job (?P<job>[0-9a-f]{32}) accepted on (?P<benchmark>\S+); "
    r"follow it at (?P<url>\S+)$")
NEXT_SLOT = re.compile(r"next slot opens at (\d\d:\d\d:\d\d) UTC \(in (\d+) min (\d+) s\)")
PARALLEL = 20


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Server]:
    """Default limits; each test uses its own user or flushes the quota (Redis is flushed per test)."""
    inst = create_instance(tmp_path_factory.mktemp("admission"), users=("alice", "bob", "dave", "erin"))
    with running_server(inst, redis_server) as server:
        yield server


def new_client(server: Server, tmp_path: Path, user: str, name: str) -> GitClient:
    return GitClient(tmp_path / name, server.url_for(user), user).init()


def job_lines(output: str) -> list[re.Match[str]]:
    return [m for line in remote_lines(output) if (m := JOB_LINE.search(line))]


def test_good_push_prints_one_job_line_per_submission(shared: Server, tmp_path: Path) -> None:
    client = new_client(shared, tmp_path, "alice", "w")
    commit = client.commit("two models", {**{f"padim/{k}": v for k, v in submission_files().items()},
                                          **{f"patchcore/{k}": v for k, v in submission_files().items()}})

    rc, out = client.push("HEAD:users/alice")

    assert rc == 0, out
    matches = job_lines(out)
    assert sorted(m["folder"] for m in matches) == ["padim", "patchcore"], out
    inst = shared.instance
    for m in matches:
        assert m["benchmark"] == "visa/pcb1"
        assert m["url"] == f"{shared.base_url}/jobs/{m['job']}/status"
        [job] = inst.wait_rows(1, "SELECT * FROM jobs WHERE id = ?", m["job"])
        assert job["user"] == "alice" and job["benchmark"] == "visa/pcb1"
        [sub] = inst.query("SELECT * FROM submissions WHERE id = ?", job["submission_id"])
        assert (sub["commit_id"], sub["folder"], sub["ref"]) == (commit, m["folder"], "refs/heads/users/alice")
        assert sub["run"] == 1 and sub["job_id"] == m["job"]
    assert inst.ref("users/alice") == commit

    # A commit that changes no submission folder submits nothing.
    client.commit("readme only", {"README.md": "notes\n"})
    rc, out = client.push("HEAD:users/alice")
    assert rc == 0, out
    assert job_lines(out) == []
    assert len(inst.query("SELECT id FROM submissions WHERE user = 'alice'")) == 2


def test_run_false_records_without_a_job(shared: Server, tmp_path: Path) -> None:
    inst = shared.instance
    client = new_client(shared, tmp_path, "bob", "w")
    commit = client.commit("record only", submission_files(), folder="padim")

    rc, out = client.push("HEAD:users/bob/record", "run=false")

    assert rc == 0, out
    assert job_lines(out) == []
    assert any("padim" in line and "without a job" in line for line in remote_lines(out)), out
    [sub] = inst.query("SELECT * FROM submissions WHERE commit_id = ?", commit)
    assert sub["run"] == 0 and sub["job_id"] is None
    # A later push with a job: once its job exists, the run=false one still has none.
    client.commit("with a job", submission_files(main="def train():\n    pass\n"), folder="padim")
    rc, out = client.push("HEAD:users/bob/record")
    assert rc == 0, out
    [m] = job_lines(out)
    inst.wait_rows(1, "SELECT id FROM jobs WHERE id = ?", m["job"])
    assert [j["id"] for j in inst.query("SELECT id FROM jobs WHERE user = 'bob'")] == [m["job"]]


def test_resource_class_is_stored(shared: Server, tmp_path: Path) -> None:
    client = new_client(shared, tmp_path, "dave", "w")
    commit = client.commit("big one", submission_files(), folder="padim")

    rc, out = client.push("HEAD:users/dave", "resource_class=large")

    assert rc == 0, out
    [m] = job_lines(out)
    [sub] = shared.instance.query("SELECT * FROM submissions WHERE commit_id = ?", commit)
    [job] = shared.instance.wait_rows(1, "SELECT * FROM jobs WHERE id = ?", m["job"])
    assert sub["resource_class"] == "large" and job["resource_class"] == "large"


def test_malformed_push_option_is_refused(shared: Server, tmp_path: Path) -> None:
    client = new_client(shared, tmp_path, "dave", "w")
    client.commit("x", submission_files(), folder="padim")
    before = shared.instance.refs()

    rc, out = client.push("HEAD:users/dave/opt", "resource_class=Not Valid!")

    assert rc != 0
    assert any("[push-option]" in line and "resource_class=NAME" in line for line in remote_lines(out)), out
    assert shared.instance.refs() == before


def test_two_users_pushing_the_same_commit_submit_one_each(shared: Server, tmp_path: Path) -> None:
    """A commit is not a user's: the same template committed by the same tool at the same second is the
    same commit id on two branches, and each push is its own user's submission and job."""
    same_time = {"GIT_AUTHOR_DATE": "2026-11-30T12:00:00Z", "GIT_COMMITTER_DATE": "2026-11-30T12:00:00Z"}
    commits, jobs = {}, {}
    for user in ("erin", "bob"):
        client = GitClient(tmp_path / user, shared.url_for(user), "template").init()
        client.write(submission_files(), "padim")
        client.git("add", "--all", check=True)
        client.git("commit", "--quiet", "-m", "from the template", env=same_time, check=True)
        commits[user] = client.head()
        rc, out = client.push(f"HEAD:users/{user}/template")
        assert rc == 0, out
        matches = job_lines(out)
        assert len(matches) == 1, out
        jobs[user] = matches[0]["job"]
    assert commits["erin"] == commits["bob"] and jobs["erin"] != jobs["bob"]
    for user in ("erin", "bob"):
        [job] = shared.instance.wait_rows(1, "SELECT * FROM jobs WHERE id = ?", jobs[user])
        [sub] = shared.instance.query("SELECT * FROM submissions WHERE id = ?", job["submission_id"])
        assert job["user"] == sub["user"] == user and sub["ref"] == f"refs/heads/users/{user}/template"


# MLflow's SQLite store (jobs are MLflow runs) uses an SQLAlchemy loader that SQLAlchemy deprecates.
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")
def test_a_repeated_event_creates_nothing_new(
    shared: Server, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    inst = shared.instance
    client = new_client(shared, tmp_path, "erin", "w")
    commit = client.commit("one", submission_files(), folder="padim")
    rc, out = client.push("HEAD:users/erin/first")
    assert rc == 0, out
    [m] = job_lines(out)
    settings = Settings.load(inst.home, environ={"LEADERSBOARD_REDIS_URL": redis_server.url,
                                                     "MLFLOW_TRACKING_URI": inst.mlflow_uri})

    def counts() -> tuple[int, int, int, int]:
        mlflow = sqlite3.connect(f"file:{inst.home / 'mlflow.db'}?mode=ro", uri=True)
        try:
            runs = mlflow.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            mlflow.close()
        return (len(inst.query("SELECT id FROM submissions")), len(inst.query("SELECT id FROM jobs")),
                runs, cast(int, redis_client.zcard(settings.queue_name)))  # a sync client: an int

    inst.wait_rows(1, "SELECT id FROM jobs WHERE id = ?", m["job"])
    deadline = time.monotonic() + 30
    while not redis_client.exists(f"arq:job:{m['job']}") and time.monotonic() < deadline:
        time.sleep(0.05)  # queued just after the job was created
    assert redis_client.exists(f"arq:job:{m['job']}")
    before = counts()
    assert before[2] >= 1 and before[3] >= 1

    # The same commit pushed again (to another branch): no folder changed, nothing is submitted.
    rc, out = client.push("HEAD:users/erin/again")
    assert rc == 0, out
    assert job_lines(out) == []
    assert counts() == before

    # The hand-over replayed for the recorded submission (as a reconciler or a redelivered webhook would).
    [row] = inst.query("SELECT id FROM submissions WHERE commit_id = ?", commit)
    sub = SubmissionStore(inst.db_path).get(row["id"])
    assert sub is not None

    async def replay() -> list[bool]:
        conn = Redis.from_url(redis_server.url)
        queue = await create_pool(RedisSettings.from_dsn(redis_server.url))
        try:
            assert settings.mlflow_tracking_uri is not None
            intake = Intake(settings, conn, queue, JobStore(settings.mlflow_tracking_uri, settings.db_path))
            return [await intake.hand_over(sub), await intake.hand_over(sub)]
        finally:
            await queue.aclose()
            await conn.aclose()

    assert asyncio.run(replay()) == [True, True]
    assert counts() == before


# ------------------------------------------------------------------------------------- hourly limit


@pytest.fixture(scope="module")
def hourly(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Server]:
    """The hourly limit alone: 10 per hour (the default), and room for many active jobs.
    Each test uses its own users (Redis, so every quota, is flushed between tests)."""
    inst = create_instance(tmp_path_factory.mktemp("hourly"), limits={"max_active_jobs": 100},
                           users=("alice", "bob", "carol"))
    with running_server(inst, redis_server) as server:
        yield server


@pytest.mark.slow
def test_hourly_limit_sequential(hourly: Server, tmp_path: Path, redis_client: redis.Redis) -> None:
    client = new_client(hourly, tmp_path, "alice", "w")
    results = []
    for n in range(12):
        client.commit(f"try {n}", submission_files(main=f"def main():\n    return {n}\n"), folder="padim")
        started = time.time()
        results.append(client.push("HEAD:users/alice"))
        if n == 0:
            first_window = (started, time.time())

    assert [rc for rc, _ in results] == [0] * 10 + [1, 1], [out for _, out in results[9:]]
    assert all(len(job_lines(out)) == 1 for _, out in results[:10])
    rc, out = results[10]
    message = next(line for line in remote_lines(out) if "[rate-limit]" in line)
    assert "10 per hour" in message
    assert "0 of 10 submissions left" in message
    slot = NEXT_SLOT.search(message)
    assert slot, message
    # The next slot opens an hour after the first accepted submission.
    possible = {datetime.fromtimestamp(t + 3600, UTC).strftime("%H:%M:%S")
                for t in range(int(first_window[0]), int(first_window[1]) + 2)}
    assert slot[1] in possible, (message, possible)
    wait = timedelta(minutes=int(slot[2]), seconds=int(slot[3]))
    assert timedelta(minutes=55) < wait <= timedelta(hours=1), message

    # Only the accepted ten landed and were recorded; the refused ones spent nothing.
    inst = hourly.instance
    assert len(inst.query("SELECT id FROM submissions WHERE user = 'alice'")) == 10
    assert redis_client.zcard(hourly_key("alice")) == 10
    # Another user has their own quota.
    other = new_client(hourly, tmp_path, "carol", "w2")
    other.commit("carol", submission_files(), folder="padim")
    rc, out = other.push("HEAD:users/carol")
    assert rc == 0, out


def parallel_pushes(server: Server, tmp_path: Path, user: str, count: int) -> list[tuple[int, str]]:
    """`count` pushes of distinct commits to users/USER/tN, all at once."""
    clients = []
    for n in range(count):
        client = new_client(server, tmp_path, user, f"p{n}")
        client.commit(f"parallel {n}", submission_files(main=f"def main():\n    return {n}\n"), folder="padim")
        clients.append(client)
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(c.push, f"HEAD:users/{user}/t{n}") for n, c in enumerate(clients)]
        return [f.result() for f in futures]


def user_branches(inst: Instance, user: str) -> list[str]:
    return [line.split()[-1] for line in inst.refs().splitlines() if f"refs/heads/users/{user}/" in line]


@pytest.mark.slow
def test_hourly_limit_holds_under_parallel_pushes(
    hourly: Server, tmp_path: Path, redis_client: redis.Redis
) -> None:
    results = parallel_pushes(hourly, tmp_path, "bob", PARALLEL)

    accepted = [out for rc, out in results if rc == 0]
    refused = [out for rc, out in results if rc != 0]
    assert len(accepted) == 10, [out for _, out in results]
    assert all(len(job_lines(out)) == 1 for out in accepted)
    assert all(any("10 per hour" in line for line in remote_lines(out)) for out in refused), refused
    inst = hourly.instance
    assert len(user_branches(inst, "bob")) == 10
    assert len(inst.query("SELECT id FROM submissions WHERE user = 'bob'")) == 10
    inst.wait_rows(10, "SELECT id FROM jobs WHERE user = 'bob'")
    assert redis_client.zcard(hourly_key("bob")) == 10


# ---------------------------------------------------------------------------------- active-jobs cap


@pytest.fixture(scope="module")
def active(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Server]:
    """The active-jobs cap alone: 3 at once (the default), and a higher hourly limit (the server runs
    no workers, so every job stays pending). Each test uses its own users, and none of the hourly
    tests': that server's reconciler restores its pending jobs' slots in the same Redis."""
    inst = create_instance(tmp_path_factory.mktemp("active"), limits={"submissions_per_hour": 100},
                           users=("ann", "ben", "cat"))
    with running_server(inst, redis_server) as server:
        yield server


def test_active_jobs_cap_sequential(active: Server, tmp_path: Path, redis_client: redis.Redis) -> None:
    client = new_client(active, tmp_path, "ann", "w")
    results = []
    for n in range(5):
        client.commit(f"try {n}", submission_files(main=f"def main():\n    return {n}\n"), folder="padim")
        results.append(client.push("HEAD:users/ann"))

    assert [rc for rc, _ in results] == [0, 0, 0, 1, 1]
    message = next(line for line in remote_lines(results[3][1]) if "[concurrency]" in line)
    assert "3 at once" in message
    assert "3 of your jobs are pending or running, 0 slot(s) free" in message
    assert "a slot opens when one of your jobs ends" in message
    inst = active.instance
    inst.wait_rows(3, "SELECT id FROM jobs WHERE user = 'ann'")
    # The refusals spent no hourly quota, and a submission without a job is still welcome.
    assert redis_client.zcard(hourly_key("ann")) == 3
    rc, out = client.push("HEAD:users/ann", "run=false")
    assert rc == 0, out
    assert redis_client.zcard(hourly_key("ann")) == 4
    assert len(inst.query("SELECT id FROM jobs WHERE user = 'ann'")) == 3


def test_active_jobs_cap_holds_under_parallel_pushes(active: Server, tmp_path: Path,
                                                     redis_client: redis.Redis) -> None:
    results = parallel_pushes(active, tmp_path, "ben", PARALLEL)

    accepted = [out for rc, out in results if rc == 0]
    refused = [out for rc, out in results if rc != 0]
    assert len(accepted) == 3, [out for _, out in results]
    assert all(any("3 at once" in line for line in remote_lines(out)) for out in refused), refused
    inst = active.instance
    assert len(user_branches(inst, "ben")) == 3
    inst.wait_rows(3, "SELECT id FROM jobs WHERE user = 'ben'")
    # The refused pushes spent no hourly quota either.
    assert redis_client.zcard(hourly_key("ben")) == 3


def test_a_push_refused_for_a_rule_spends_no_quota(active: Server, tmp_path: Path,
                                                    redis_client: redis.Redis) -> None:
    client = new_client(active, tmp_path, "cat", "w")
    case = BAD_FOLDERS["syntax-error"]
    client.commit("broken", case.files, folder=case.folder)
    for _ in range(3):
        rc, out = client.push("HEAD:users/cat")
        assert rc != 0, out
    assert redis_client.zcard(hourly_key("cat")) == 0
    fixed = new_client(active, tmp_path, "cat", "w2")
    for n in range(3):
        fixed.commit(f"good {n}", submission_files(main=f"def main():\n    return {n}\n"), folder="padim")
        rc, out = fixed.push("HEAD:users/cat")
        assert rc == 0, out
