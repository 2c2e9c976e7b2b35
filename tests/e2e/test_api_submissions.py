"""POST /submissions: files committed as a folder on the caller's branch, then submitted exactly as a
push would be. Real parts only: `leadersboard serve` (with a worker and the session's MLflow server
where a job must finish), redis-server, git over HTTP.

Every refused request is checked to have changed nothing: refs, objects, database rows, Redis quota.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from leadersboard.contract import active_key, hourly_key
from leadersboard.datasets import Dataset
from leadersboard.local.redis_server import RedisServer, start_redis
from leadersboard.settings import Limits
from leadersboard.webhook.intake.behalf import PreparedCommit, check_tree, prepare, publish
from leadersboard.webhook.intake.uploads import Upload, UploadedFile

from support.git import GitClient, git_env, remote_lines
from support.instances import GOOD_CONFIG, GOOD_MAIN, Instance, create_instance, unique_user
from support.platform import MLFLOW_MAIN, Platform
from support.ports import fresh_port
from support.servers import Server, running_server
from support.shared import SessionMlflow

Files = dict[str, str | bytes]
KIB = 1024
SMALL_LIMITS = {"max_file_bytes": 64 * KIB, "max_submission_bytes": 256 * KIB}


def good_files(**extra: str | bytes) -> Files:
    return {"main.py": GOOD_MAIN, "config.yaml": GOOD_CONFIG, **extra}


def upload(base_url: str, token: str | None, files: Files | list[tuple[str, str | bytes]],
           **fields: str) -> httpx.Response:
    """POST /submissions as multipart, one 'files' part per file (a list keeps duplicate names) and
    one text part per field."""
    items = list(files.items()) if isinstance(files, dict) else files
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    parts: list[tuple[str, tuple[str | None, str | bytes]]] = [("files", (name, content)) for name, content in items]
    parts += [(name, (None, value)) for name, value in fields.items()]  # no file name: a text field
    return httpx.post(f"{base_url}/submissions", headers=headers, files=parts, timeout=60)


def snapshot(inst: Instance, client: redis.Redis, *users: str) -> dict[str, Any]:
    """Everything a refused request must leave alone."""
    objects = sorted(str(p.relative_to(inst.repo)) for p in (inst.repo / "objects").rglob("*") if p.is_file())
    return {
        "refs": inst.refs(),
        "objects": objects,
        "submissions": inst.query("SELECT id FROM submissions ORDER BY id"),
        "jobs": inst.query("SELECT id FROM jobs ORDER BY id"),
        "quota": {u: (client.zrange(hourly_key(u), 0, -1), client.zrange(active_key(u), 0, -1)) for u in users},
        "pending": client.keys("leadersboard:push:*"),
    }


def git_show(inst: Instance, spec: str) -> str:
    return subprocess.run(["git", "--git-dir", str(inst.repo), "show", spec], capture_output=True, text=True,
                          check=True, env=git_env(inst.home)).stdout


# ------------------------------------------------------------------------------------ happy path


@pytest.fixture(scope="module")
def platform_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The module's platform has a Redis of its own: on the session's, its worker would take the
    queue entries of `small` (below, no workers: its jobs must stay pending), and each test's flush
    would empty the queue under it."""
    server = start_redis(tmp_path_factory.mktemp("api-redis"), port=fresh_port(), appendonly=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, platform_redis: RedisServer,
             mlflow_server: SessionMlflow) -> Iterator[Platform]:
    """`leadersboard serve` with one worker, jobs tracked in the session's MLflow server; one user per test."""
    inst = create_instance(tmp_path_factory.mktemp("api"), users=(unique_user(), unique_user()))
    document = yaml.safe_load(inst.config_path.read_text())
    document["runner"].update({"heartbeat_seconds": 1, "reconcile_seconds": 1})
    inst.config_path.write_text(yaml.safe_dump(document))
    running = Platform(inst, platform_redis.url, mlflow_server.url, workers=1).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def platform_client(platform_redis: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(platform_redis.url) as client:  # closed when the fixture ends
        yield client


def test_upload_is_committed_and_its_job_completes(platform: Platform, tmp_path: Path,
                                                   platform_client: redis.Redis) -> None:
    inst = platform.instance
    user, token = next(iter(inst.tokens.items()))
    files: Files = {"main.py": MLFLOW_MAIN.format(auroc=0.93, f1=0.81), "config.yaml": GOOD_CONFIG}
    metadata = {"method": "Tiny Net", "description": "uploaded through the API", "epochs": 3}

    answer = upload(platform.base_url, token, files, metadata=json.dumps(metadata))

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["folder"] == "tiny-net" and body["branch"] == f"users/{user}" and body["status"] == "pending"
    commit, job_id = body["commit"], body["job_id"]
    # The commit is on the user's branch, seen through git like any push.
    clone = GitClient(tmp_path / "clone", f"http://{user}:{token}@127.0.0.1:{platform.port}/git/submissions.git", user)
    code, out = clone.clone(branch=f"users/{user}")
    assert code == 0, out
    assert clone.head() == commit
    folder = clone.workdir / "tiny-net"
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "main.py", "submission.yaml"]
    assert (folder / "main.py").read_text() == files["main.py"]
    assert yaml.safe_load((folder / "submission.yaml").read_text()) == metadata
    assert f"Author: {user} <" in git_show(inst, commit)
    # Recorded and handed over exactly as a push's submission.
    [sub] = inst.query("SELECT * FROM submissions WHERE id = ?", body["submission_id"])
    assert (sub["commit_id"], sub["folder"], sub["ref"], sub["benchmark"]) == (
        commit, "tiny-net", f"refs/heads/users/{user}", "visa/pcb1")
    assert json.loads(sub["metadata"]) == metadata and sub["job_id"] == job_id and sub["handed_over"] == 1
    [job_row] = inst.query("SELECT * FROM jobs WHERE id = ?", job_id)
    assert job_row["submission_id"] == body["submission_id"]

    job = platform.wait_status(job_id, user)
    assert job["status"] == "completed", (job, platform.api("GET", f"/jobs/{job_id}/logs", user).text)
    assert job["metrics"]["auroc"] == pytest.approx(0.93) and job["submission"] == "tiny-net"
    assert "done: auroc=0.93" in platform.api("GET", f"/jobs/{job_id}/logs", user).text
    assert [j["job_id"] for j in platform.api("GET", "/jobs", user).json()] == [job_id]

    # Another entrypoint and config, without a job: submission.yaml names them; one hourly slot, no job slot.
    custom = upload(platform.base_url, token, {"train.py": "def train():\n    pass\n", "conf/run.yaml": GOOD_CONFIG},
                    entrypoint="train.py", config_file="conf/run.yaml", folder="custom", run="false")
    assert custom.status_code == 201, custom.text
    assert custom.json()["job_id"] is None and custom.json()["status"] is None
    [row] = inst.query("SELECT * FROM submissions WHERE id = ?", custom.json()["submission_id"])
    assert (row["entrypoint"], row["config_file"], row["run"], row["job_id"]) == ("train.py", "conf/run.yaml", 0, None)
    written = yaml.safe_load(git_show(inst, f"{custom.json()['commit']}:custom/submission.yaml"))
    assert written == {"entrypoint": "train.py", "config": "conf/run.yaml"}
    assert platform_client.zcard(hourly_key(user)) == 2 and platform_client.zcard(active_key(user)) == 0

    # The participant carries on with git on top of what the API committed.
    assert clone.git("pull", "--quiet", "origin", f"users/{user}")[0] == 0
    clone.commit("with git", {"main.py": GOOD_MAIN, "config.yaml": GOOD_CONFIG}, "pushed")
    code, out = clone.push(f"HEAD:users/{user}", "run=false")
    assert code == 0, out
    assert any("pushed" in line for line in remote_lines(out)), out


# The guide's entry points: train() alone is called once; a main block runs alone; an exception is the reason.
TRAIN_ONLY_MAIN = '''import mlflow

calls = []


def train():
    calls.append(1)
    print(f"train called {len(calls)} time(s)")
    with mlflow.start_run():
        mlflow.log_metric("auroc", 0.77)
        mlflow.log_metric("f1_score", 0.66)
'''
MAIN_BLOCK_MAIN = TRAIN_ONLY_MAIN.replace("def train", "def main").replace("train called", "main called") + '''

if __name__ == "__main__":
    main()
'''
TUPLE_MAIN = '''def main():
    engine = ("engine", "model", "datamodule")  # what Engine.from_config really returns
    engine.train()
    print("Given value: {...}")
'''
GUIDE_JOB_BODY = '{"submission_id":"SUBMISSION","config":{"resource_class":"medium"}}'


def test_the_guides_api_calls_and_entry_points(platform: Platform, tmp_path: Path,
                                                platform_client: redis.Redis) -> None:
    user, token = list(platform.instance.tokens.items())[1]
    auth = {"Authorization": f"Bearer {token}"}
    # The guide's curl sequence, verbatim: POST /submissions, then POST /jobs with its JSON body.
    created = upload(platform.base_url, token, {"main.py": TRAIN_ONLY_MAIN, "config.yaml": GOOD_CONFIG},
                     entrypoint="main.py", config_file="config.yaml",
                     metadata='{"method":"padim","description":"My model"}')
    assert created.status_code == 201, created.text
    body = GUIDE_JOB_BODY.replace("SUBMISSION", created.json()["submission_id"])
    second = httpx.post(f"{platform.base_url}/jobs", content=body, timeout=30,
                        headers={**auth, "Content-Type": "application/json"})
    assert second.status_code == 200, second.text
    job_id = created.json()["job_id"]
    assert second.json()["job_id"] == job_id and second.json()["status"] in ("pending", "running")
    assert [j["job_id"] for j in platform.api("GET", "/jobs", user).json()] == [job_id]
    assert platform_client.zcard(hourly_key(user)) == 1

    job = platform.wait_status(job_id, user)
    log = platform.api("GET", f"/jobs/{job_id}/logs", user).text
    assert job["status"] == "completed", (job, log)
    assert job["metrics"]["auroc"] == pytest.approx(0.77)
    assert log.count("train called") == 1 and "train called 1 time(s)" in log
    assert "the platform calls its train()" in log

    block = upload(platform.base_url, token, {"main.py": MAIN_BLOCK_MAIN, "config.yaml": GOOD_CONFIG}, folder="block")
    block_job = platform.wait_status(block.json()["job_id"], user)
    log = platform.api("GET", f"/jobs/{block_job['job_id']}/logs", user).text
    assert block_job["status"] == "completed", (block_job, log)
    assert log.count("main called") == 1 and "runs as a script" in log

    failing = upload(platform.base_url, token, {"main.py": TUPLE_MAIN, "config.yaml": GOOD_CONFIG}, folder="tuple")
    failed = platform.wait_status(failing.json()["job_id"], user)
    assert failed["status"] == "failed"
    assert failed["error"].startswith("main.py exited with code 1: AttributeError: 'tuple' object has no "
                                      "attribute 'train' (hint: Engine.from_config returns a tuple")

    # An unknown resource class: refused by the API and at push, changing nothing.
    listed = "this instance offers small, medium, large (default medium)"
    unknown = platform.api("POST", "/jobs", user, json={"submission_id": created.json()["submission_id"],
                                                         "config": {"resource_class": "huge"}})
    assert unknown.status_code == 400 and listed in unknown.json()["detail"]
    git = platform.client(tmp_path, user)
    git.commit("pushed", {"main.py": GOOD_MAIN, "config.yaml": GOOD_CONFIG}, "pushed")
    code, out = git.push(f"HEAD:users/{user}/topic", "resource_class=huge")
    assert code != 0 and any("[push-option]" in line and listed in line for line in remote_lines(out)), out
    assert len(platform.api("GET", "/jobs", user).json()) == 3 and platform_client.zcard(active_key(user)) == 0


# ---------------------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Server]:
    """Small size limits, 3 submissions an hour, 2 active jobs, no workers (jobs stay pending)."""
    inst = create_instance(tmp_path_factory.mktemp("api-small"),
                           limits={**SMALL_LIMITS, "submissions_per_hour": 3, "max_active_jobs": 2},
                           users=("alice", "bob", "carol", "dave", "erin"))
    inst.cli("user", "revoke", "erin")
    with running_server(inst, redis_server) as server:
        yield server


BAD_REQUESTS: dict[str, tuple[Files | list[tuple[str, str | bytes]], dict[str, str], tuple[str, ...]]] = {
    "no-files": ({}, {"metadata": "{}"}, ("No files",)),
    "metadata-not-json": (good_files(), {"metadata": "{method: PaDiM"}, ("'metadata' is not valid JSON",)),
    "metadata-not-object": (good_files(), {"metadata": "[1, 2]"}, ("must be a JSON object",)),
    "metadata-names-entrypoint": (good_files(), {"metadata": '{"entrypoint": "x.py"}'}, ("form field 'entrypoint'",)),
    "dot-dot": (good_files(**{"../evil.py": "x = 1\n"}), {}, ("'../evil.py'", "no '..'")),
    "nested-dot-dot": (good_files(**{"src/../../evil.py": "x = 1\n"}), {}, ("no '..'",)),
    "absolute": (good_files(**{"/etc/evil.py": "x = 1\n"}), {}, ("no absolute paths",)),
    "backslash": (good_files(**{"src\\evil.py": "x = 1\n"}), {}, ("backslashes",)),
    "dot-git": (good_files(**{".git/config": "[core]\n"}), {}, ("'.git/config'", "names git keeps for itself")),
    "dot-git-dot": (good_files(**{".git./x": "x"}), {}, ("'.git./x'", "names git keeps for itself")),
    "too-deep": (good_files(**{"a/" * 40 + "x.py": "x"}), {}, ("at most 32 levels deep",)),
    "duplicate": ([("main.py", GOOD_MAIN), ("config.yaml", GOOD_CONFIG), ("main.py", "def main():\n    pass\n")], {},
                  ("Duplicate file name 'main.py'",)),
    "file-and-folder": (good_files(src="x", **{"src/a.py": "x"}), {}, ("as a file and as a folder",)),
    "unknown-field": (good_files(), {"config": "config.yaml"}, ("Unknown field 'config'",)),
    "run-not-boolean": (good_files(), {"run": "maybe"}, ("'run' must be true or false",)),
    "entrypoint-escapes": (good_files(), {"entrypoint": "../main.py"}, ("Invalid entrypoint",)),
    "yaml-and-metadata": (good_files(**{"submission.yaml": "method: x\n"}), {"metadata": '{"method": "y"}'},
                          ("give one or the other",)),
    # Rule failures: 400 with the messages a push would print.
    "folder-with-slash": (good_files(), {"folder": "a/b"}, ("[folder-name] a/b/", "is not allowed")),
    "folder-with-markup": (good_files(), {"folder": "<script>alert(1)</script>"}, ("[folder-name]",)),
    "other-users-branch": (good_files(), {"branch": "users/bob"}, ("[branch] users/bob", "may not push")),
    "syntax-error": (good_files(**{"main.py": "import os\n\ndef main(:\n    pass\n"}), {"folder": "broken"},
                     ("[entrypoint] broken/main.py line 3:", "Python syntax error")),
    "unknown-dataset": (good_files(**{"config.yaml": GOOD_CONFIG.replace("name: visa", "name: mvtec")}),
                        {"folder": "broken"}, ("[config] broken/config.yaml", "use one of: visa")),
    "long-method": (good_files(), {"metadata": json.dumps({"method": "x" * 2001})}, ("[submission-yaml]",)),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_malformed_or_rule_breaking_upload_is_400_and_changes_nothing(
    small: Server, redis_client: redis.Redis, case: str
) -> None:
    files, fields, fragments = BAD_REQUESTS[case]
    before = snapshot(small.instance, redis_client, "alice")
    answer = upload(small.base_url, small.instance.tokens["alice"], files, **fields)
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert all(f in detail for f in fragments), detail
    assert snapshot(small.instance, redis_client, "alice") == before


def test_rule_failures_list_each_problem(small: Server) -> None:
    files = good_files(**{"main.py": "def helper():\n    pass\n",
                          "config.yaml": GOOD_CONFIG.replace("name: visa", "name: mvtec")})
    answer = upload(small.base_url, small.instance.tokens["alice"], files, folder="two")
    assert answer.status_code == 400
    assert [p["rule"] for p in answer.json()["problems"]] == ["entrypoint", "config"]
    assert answer.json()["detail"].startswith("Submission rejected, nothing was changed.")


def test_missing_or_bad_token_is_401(small: Server, redis_client: redis.Redis) -> None:
    before = snapshot(small.instance, redis_client, "alice", "erin")
    for token in (None, "nope", small.instance.tokens["erin"]):  # none, unknown, revoked
        answer = upload(small.base_url, token, good_files())
        assert answer.status_code == 401 and "detail" in answer.json(), answer.text
    assert snapshot(small.instance, redis_client, "alice", "erin") == before


def test_openapi_describes_the_upload(small: Server) -> None:
    operation = httpx.get(f"{small.base_url}/openapi.json", timeout=30).json()["paths"]["/submissions"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["files"] and {"entrypoint", "config_file", "metadata"} <= set(form["properties"])
    assert {"201", "400", "401", "413", "429"} <= set(operation["responses"])


def test_not_multipart_is_400(small: Server) -> None:
    answer = httpx.post(f"{small.base_url}/submissions", json={"files": ["main.py"]}, timeout=30,
                        headers={"Authorization": f"Bearer {small.instance.tokens['alice']}"})
    assert answer.status_code == 400 and "multipart/form-data" in answer.json()["detail"]


def test_too_large_is_413_and_changes_nothing(small: Server, redis_client: redis.Redis) -> None:
    inst, token = small.instance, small.instance.tokens["alice"]
    before = snapshot(inst, redis_client, "alice")

    one_big = upload(small.base_url, token, good_files(**{"weights.bin": os.urandom(64 * KIB + 1)}))
    assert one_big.status_code == 413 and "weights.bin is over the 0.1 MB limit per file" in one_big.json()["detail"]
    many = upload(small.base_url, token, good_files(**{f"part{n}.bin": os.urandom(60 * KIB) for n in range(5)}))
    assert many.status_code == 413 and "limit of a submission" in many.json()["detail"]
    field = upload(small.base_url, token, good_files(), metadata=json.dumps({"notes": "x" * 70 * KIB}))
    assert field.status_code == 413 and "'metadata' is over" in field.json()["detail"]
    assert snapshot(inst, redis_client, "alice") == before


def test_oversized_body_is_refused_before_it_is_read(small: Server) -> None:
    """A declared length over the limit is refused at once; an endless chunked body is cut off at the limit."""
    token = small.instance.tokens["alice"]
    with socket.create_connection(("127.0.0.1", small.port), timeout=30) as conn:
        conn.sendall(f"POST /submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000000\r\n\r\n".encode())
        head = conn.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413"), head

    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="huge.bin"\r\n\r\n'
        chunk = b"\0" * (64 * KIB)
        while sent < 1024 * 1024 * 1024:
            sent += len(chunk)
            yield chunk

    answer = httpx.post(f"{small.base_url}/submissions", content=endless(), timeout=60,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=b"})
    assert answer.status_code == 413, answer.text
    assert sent < 64 * 1024 * 1024, f"the server read {sent} bytes of an upload limited to 64 KiB per file"


def test_hourly_limit_is_429_and_spends_nothing(small: Server, redis_client: redis.Redis) -> None:
    inst, token = small.instance, small.instance.tokens["bob"]
    for n in range(3):
        answer = upload(small.base_url, token, good_files(), folder=f"m{n}", run="false")
        assert answer.status_code == 201, answer.text
    before = snapshot(inst, redis_client, "bob")

    refused = upload(small.base_url, token, good_files(), folder="m3", run="false")

    assert refused.status_code == 429, refused.text
    assert "[rate-limit] 3 per hour: 0 of 3 submissions left" in refused.json()["detail"]
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.headers["X-RateLimit-Remaining-Submissions"] == "0"
    assert snapshot(inst, redis_client, "bob") == before


def test_active_jobs_limit_is_429_and_run_false_still_fits(small: Server, redis_client: redis.Redis) -> None:
    inst, token = small.instance, small.instance.tokens["carol"]
    for n in range(2):
        answer = upload(small.base_url, token, good_files(), folder=f"m{n}")
        assert answer.status_code == 201, answer.text
    inst.wait_rows(2, "SELECT id FROM jobs WHERE user = 'carol'")
    before = snapshot(inst, redis_client, "carol")

    refused = upload(small.base_url, token, good_files(), folder="m2")

    assert refused.status_code == 429, refused.text
    assert "[concurrency] 2 at once" in refused.json()["detail"]
    assert refused.headers["X-RateLimit-Remaining-Jobs"] == "0" and "Retry-After" in refused.headers
    assert snapshot(inst, redis_client, "carol") == before
    # Without a job, the same folder is welcome (metadata may say so too).
    recorded = upload(small.base_url, token, good_files(), folder="m2", metadata='{"run": false}')
    assert recorded.status_code == 201 and recorded.json()["job_id"] is None, recorded.text
    assert redis_client.zcard(active_key("carol")) == 2 and redis_client.zcard(hourly_key("carol")) == 3


def test_same_folder_again_replaces_it_and_identical_files_are_refused(small: Server,
                                                                      redis_client: redis.Redis) -> None:
    inst, token = small.instance, small.instance.tokens["dave"]
    first = upload(small.base_url, token, good_files(**{"notes.txt": "v1"}), folder="padim", run="false")
    assert first.status_code == 201, first.text
    second = upload(small.base_url, token, good_files(), folder="padim", run="false")
    assert second.status_code == 201, second.text
    listing = git_show(inst, f"{second.json()['commit']}:padim")
    assert "notes.txt" not in listing and "main.py" in listing  # the folder is what was uploaded, no more
    before = snapshot(inst, redis_client, "dave")
    again = upload(small.base_url, token, good_files(), folder="padim", run="false")
    assert again.status_code == 400 and "Nothing to submit" in again.json()["detail"]
    assert snapshot(inst, redis_client, "dave") == before
    # A name derived from the method never replaces a folder: it is made unique.
    derived = upload(small.base_url, token, good_files(), metadata='{"method": "PaDiM", "run": false}')
    assert derived.status_code == 201 and derived.json()["folder"].startswith("padim-"), derived.text


def test_branch_held_by_git_is_retried_then_409(small: Server, redis_client: redis.Redis) -> None:
    """git holds `<ref>.lock` while a push moves the branch: an upload waits and tries again, and
    answers 409 when the branch stays busy."""
    inst, token = small.instance, small.instance.tokens["alice"]
    lock = inst.repo / "refs" / "heads" / "users" / "alice.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("0" * 40 + "\n")
    before = snapshot(inst, redis_client, "alice")
    try:
        busy = upload(small.base_url, token, good_files(), folder="busy", run="false")
    finally:
        lock.unlink()
    assert busy.status_code == 409 and "try again" in busy.json()["detail"], busy.text
    after = snapshot(inst, redis_client, "alice")
    # Objects moved in just before the branch was found busy stay unreachable (as after a failed push).
    assert {**after, "objects": None} == {**before, "objects": None}

    lock.write_text("0" * 40 + "\n")
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(upload, small.base_url, token, good_files(), folder="later", run="false")
        time.sleep(0.3)  # a retry or two meet the lock
        lock.unlink()
        assert answer.result().status_code == 201, answer.result().text
    assert inst.ref("users/alice") == answer.result().json()["commit"]


# ------------------------------------------------------------------------------------- concurrency


def _parallel(server: Server, tmp_path: Path, user: str, count: int, run: bool) -> tuple[list[httpx.Response],
                                                                                          list[tuple[int, str]]]:
    """`count` uploads (to users/USER/api) and `count` pushes (to users/USER/tN), all at once."""
    token = server.instance.tokens[user]
    clients = []
    for n in range(count):
        client = GitClient(tmp_path / f"p{n}", server.url_for(user), user).init()
        client.commit(f"push {n}", {"main.py": f"def main():\n    return {n}\n", "config.yaml": GOOD_CONFIG},
                      f"pushed{n}")
        clients.append(client)
    options = () if run else ("run=false",)
    with ThreadPoolExecutor(max_workers=2 * count) as pool:
        uploads = [pool.submit(upload, server.base_url, token, good_files(**{"n.txt": str(n)}), folder=f"api{n}",
                               branch=f"users/{user}/api", run=str(run).lower()) for n in range(count)]
        pushes = [pool.submit(c.push, f"HEAD:users/{user}/t{n}", *options) for n, c in enumerate(clients)]
        return [f.result() for f in uploads], [f.result() for f in pushes]


@pytest.mark.slow
def test_hourly_limit_holds_across_parallel_uploads_and_pushes(
    make_instance: Callable[..., Instance], redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    inst = make_instance(limits={"submissions_per_hour": 5, "max_active_jobs": 100}, users=("frank",))
    with running_server(inst, redis_server) as server:
        uploads, pushes = _parallel(server, tmp_path, "frank", 6, run=False)
    accepted = [a for a in uploads if a.status_code == 201] + [out for code, out in pushes if code == 0]
    assert len(accepted) == 5, ([a.text for a in uploads], pushes)
    assert {a.status_code for a in uploads} <= {201, 429}
    assert all(a.headers["X-RateLimit-Remaining-Submissions"] == "0" for a in uploads if a.status_code == 429)
    assert all(any("[rate-limit]" in line for line in remote_lines(out)) for code, out in pushes if code != 0)
    assert redis_client.zcard(hourly_key("frank")) == 5
    assert len(inst.query("SELECT id FROM submissions WHERE user = 'frank'")) == 5
    # Each accepted upload is one commit on the upload branch, none lost to another.
    api_commits = [a.json()["commit"] for a in uploads if a.status_code == 201]
    log = subprocess.run(["git", "--git-dir", str(inst.repo), "rev-list", "users/frank/api"], capture_output=True,
                         text=True, check=False, env=git_env(inst.home)).stdout.split()
    assert sorted(log) == sorted(api_commits)


@pytest.mark.slow
def test_active_jobs_limit_holds_across_parallel_uploads_and_pushes(
    make_instance: Callable[..., Instance], redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    inst = make_instance(limits={"submissions_per_hour": 100, "max_active_jobs": 3}, users=("gina",))
    with running_server(inst, redis_server) as server:
        uploads, pushes = _parallel(server, tmp_path, "gina", 4, run=True)
        accepted = [a for a in uploads if a.status_code == 201] + [out for code, out in pushes if code == 0]
        assert len(accepted) == 3, ([a.text for a in uploads], pushes)
        assert all("[concurrency]" in a.json()["detail"] for a in uploads if a.status_code == 429)
        inst.wait_rows(3, "SELECT id FROM jobs WHERE user = 'gina'")
    assert redis_client.zcard(active_key("gina")) == 3
    assert redis_client.zcard(hourly_key("gina")) == 3  # the refused ones spent no hourly slot either


@pytest.mark.slow
def test_uploads_and_pushes_to_one_branch_never_overwrite_each_other(
    make_instance: Callable[..., Instance], redis_server: RedisServer, tmp_path: Path
) -> None:
    inst = make_instance(limits={"submissions_per_hour": 100, "max_active_jobs": 100}, users=("hana",))
    with running_server(inst, redis_server) as server:
        token = inst.tokens["hana"]
        seed = upload(server.base_url, token, good_files(), folder="seed", run="false")
        assert seed.status_code == 201, seed.text
        landed: list[str] = [seed.json()["commit"]]

        def push_loop(n: int) -> list[str]:
            """Fetch, commit, push, again: whatever lands must stay."""
            client = GitClient(tmp_path / f"w{n}", server.url_for("hana"), "hana")
            assert client.clone(branch="users/hana")[0] == 0
            done = []
            for k in range(4):
                client.git("pull", "--quiet", "--rebase", "origin", "users/hana")
                commit = client.commit(f"push {n}.{k}", {"main.py": f"def main():\n    return {k}\n",
                                                         "config.yaml": GOOD_CONFIG}, f"git{n}-{k}")
                code, _ = client.push("HEAD:users/hana", "run=false")
                if code == 0:
                    done.append(commit)
            return done

        with ThreadPoolExecutor(max_workers=8) as pool:
            pushers = [pool.submit(push_loop, n) for n in range(2)]
            uploads = [pool.submit(upload, server.base_url, token, good_files(**{"n.txt": str(n)}), folder=f"api{n}",
                                   run="false") for n in range(8)]
            answers = [f.result() for f in uploads]
            for f in pushers:
                landed += f.result()
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    landed += [a.json()["commit"] for a in answers if a.status_code == 201]
    assert sum(a.status_code == 201 for a in answers) >= 6, [a.text for a in answers]
    history = set(subprocess.run(["git", "--git-dir", str(inst.repo), "rev-list", "users/hana"], capture_output=True,
                                 text=True, check=True, env=git_env(inst.home)).stdout.split())
    assert set(landed) <= history, "a commit that was accepted is no longer on the branch"
    recorded = {r["commit_id"] for r in inst.query("SELECT commit_id FROM submissions WHERE user = 'hana'")}
    assert recorded == set(landed)


# -------------------------------------------------------------------------- compare-and-swap, direct


@contextmanager
def _upload_of(folder: str, tmp_path: Path) -> Iterator[Upload]:
    files = []
    for name, content in good_files().items():
        path = tmp_path / f"{folder}-{name}"
        path.write_text(str(content))
        files.append(UploadedFile(name, path.open("rb"), path.stat().st_size))
    made = Upload.from_form({"folder": folder}, files)
    try:
        yield made
    finally:
        made.close()


def prepared_and_checked(repo: Path, upload: Upload, datasets: dict[str, Dataset], limits: Limits) -> PreparedCommit:
    """As the service does it: built (branch rules), then the folder rules, for alice."""
    prepared = prepare(repo, "alice", upload)
    assert prepared.checkable and prepared.tree_id is not None
    prepared.judge(check_tree(repo, prepared.quarantine, prepared.tree_id, prepared.folder, datasets, limits))
    return prepared


@pytest.mark.parametrize("branch_exists", [True, False], ids=["existing-branch", "new-branch"])
def test_publish_refuses_when_the_tip_moved(instance: Instance, tmp_path: Path, branch_exists: bool) -> None:
    datasets, limits = {"visa": Dataset("visa", tmp_path, "visa", categories=("pcb1",))}, Limits()
    if branch_exists:
        with _upload_of("first", tmp_path) as first:
            assert publish(instance.repo, prepared_and_checked(instance.repo, first, datasets, limits))
    with _upload_of("mine", tmp_path) as mine:
        prepared = prepared_and_checked(instance.repo, mine, datasets, limits)
    assert prepared.submission is not None and prepared.quarantine is not None and prepared.commit_id
    assert not list((instance.repo / "objects").glob("*/" + prepared.commit_id[2:])), "written before it was admitted"

    # Meanwhile the branch moves, by git itself (as a push would move it).
    env = git_env(instance.home)
    tree = subprocess.run(["git", "--git-dir", str(instance.repo), "mktree"], input="", capture_output=True,
                          text=True, check=True, env=env).stdout.strip()
    other = subprocess.run(["git", "--git-dir", str(instance.repo), "-c", "user.name=x", "-c", "user.email=x@x",
                            "commit-tree", tree, "-m", "meanwhile",
                            *(["-p", prepared.tip] if prepared.tip else [])],
                           capture_output=True, text=True, check=True, env=env).stdout.strip()
    subprocess.run(["git", "--git-dir", str(instance.repo), "update-ref", "refs/heads/users/alice", other],
                   check=True, env=env)

    assert publish(instance.repo, prepared) is False
    assert instance.ref("users/alice") == other  # nothing overwritten
    with _upload_of("mine", tmp_path) as mine:
        again = prepared_and_checked(instance.repo, mine, datasets, limits)
    assert again.tip == other and publish(instance.repo, again)
    assert instance.ref("users/alice") == again.commit_id
    assert not list((instance.repo / "objects").glob("tmp_objdir-*")), "a quarantine folder was left behind"
