"""Git smart HTTP through the service: large (chunked) pushes, gzip bodies, clone and fetch by another
user, authentication, and /healthz."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from leadersboard.local.redis_server import RedisServer

from support.git import GitClient, remote_lines
from support.instances import create_instance, submission_files
from support.servers import Server, running_server

FIVE_MB = 5 * 1024 * 1024
TRACE = {"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Server]:
    inst = create_instance(tmp_path_factory.mktemp("git-http"))
    with running_server(inst, redis_server) as running:
        yield running


def client_for(server: Server, tmp_path: Path, user: str | None, name: str, token: str | None = None) -> GitClient:
    return GitClient(tmp_path / name, server.url_for(user, token), user or "anonymous")


def test_healthz(server: Server) -> None:
    answer = httpx.get(f"{server.base_url}/healthz", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["redis"] == "ok"


def test_five_megabyte_push_then_clone_by_another_user(server: Server, tmp_path: Path) -> None:
    payload = os.urandom(FIVE_MB)  # incompressible: the pack really is 5 MB
    alice = client_for(server, tmp_path, "alice", "alice").init()
    commit = alice.commit("big", submission_files(**{"weights.bin": payload}), folder="big")

    rc, out = alice.git("push", "origin", "HEAD:users/alice/big", env=TRACE)

    assert rc == 0, "\n".join(line for line in out.splitlines() if "remote:" in line or "error" in line)
    assert "transfer-encoding: chunked" in out.lower()  # the body was streamed, not buffered
    assert any("big: job" in line for line in remote_lines(out))
    assert server.instance.ref("users/alice/big") == commit

    bob = client_for(server, tmp_path, "bob", "bob")
    rc, out = bob.clone("users/alice/big")
    assert rc == 0, out
    assert bob.head() == commit
    assert hashlib.sha256((bob.workdir / "big" / "weights.bin").read_bytes()).digest() == \
        hashlib.sha256(payload).digest()


def test_fetch_by_another_user_sees_new_commits(server: Server, tmp_path: Path) -> None:
    alice = client_for(server, tmp_path, "alice", "alice").init()
    alice.commit("first", submission_files(), folder="model")
    rc, out = alice.push("HEAD:users/alice/shared")
    assert rc == 0, out

    bob = client_for(server, tmp_path, "bob", "bob")
    rc, out = bob.clone()  # the whole repository
    assert rc == 0, out
    rc, out = bob.git("ls-remote", "origin")
    assert rc == 0 and "refs/heads/users/alice/shared" in out, out
    # Newer commits of bob's own that the server does not have: the fetch offers them first, in many
    # "have" lines, and git sends such a request body gzip-compressed.
    now = int(time.time())
    stream = "".join(
        f"commit refs/heads/local\ncommitter bob <bob@example.org> {now + n} +0000\ndata 6\nlocal\n"
        f"M 644 inline notes.txt\ndata {len(str(n)) + 1}\n{n}\n\n" for n in range(80))
    imported = subprocess.run(["git", "fast-import", "--quiet"], input=stream, text=True, cwd=bob.workdir,
                              env=bob.env, capture_output=True, check=False)
    assert imported.returncode == 0, imported.stderr

    newer = alice.commit("second", submission_files(main="def train():\n    pass\n"), folder="model")
    rc, out = alice.push("HEAD:users/alice/shared")
    assert rc == 0, out

    rc, out = bob.git("fetch", "origin", env=TRACE)
    assert rc == 0, out
    assert "content-encoding: gzip" in out.lower()
    assert bob.git("rev-parse", "origin/users/alice/shared", check=True)[1].strip() == newer


def test_clone_needs_a_valid_token(server: Server, tmp_path: Path) -> None:
    rc, out = client_for(server, tmp_path, None, "anonymous").clone()
    assert rc != 0 and "could not read Username" in out, out
    rc, out = client_for(server, tmp_path, "bob", "wrong", token="lbt_not-a-token").clone()
    assert rc != 0 and "Authentication failed" in out, out
    # A token is only good with its own user name.
    rc, out = client_for(server, tmp_path, "bob", "swapped", token=server.instance.tokens["alice"]).clone()
    assert rc != 0 and "Authentication failed" in out, out


def test_only_the_smart_protocol_is_served(server: Server) -> None:
    auth = ("alice", server.instance.tokens["alice"])
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{server.git_url}/HEAD", auth=auth).status_code == 404
        assert http.get(f"{server.git_url}/config", auth=auth).status_code == 404
        answer = http.get(f"{server.git_url}/info/refs", params={"service": "git-upload-pack"}, auth=auth)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/x-git-upload-pack-advertisement"
