"""Git smart HTTP through the service: large (chunked) pushes, gzip bodies, clone and fetch, private
branches (and admins and public code that see them all), authentication, and /healthz."""

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
    inst.tokens["olga"] = inst.cli("user", "add", "olga", "--admin").stdout.strip().splitlines()[-1]
    with running_server(inst, redis_server) as running:
        yield running


def client_for(server: Server, tmp_path: Path, user: str | None, name: str, token: str | None = None) -> GitClient:
    return GitClient(tmp_path / name, server.url_for(user, token), user or "anonymous")


def test_healthz(server: Server) -> None:
    answer = httpx.get(f"{server.base_url}/healthz", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["redis"] == "ok"


def test_five_megabyte_push_then_clone(server: Server, tmp_path: Path) -> None:
    payload = os.urandom(FIVE_MB)  # incompressible: the pack really is 5 MB
    alice = client_for(server, tmp_path, "alice", "alice").init()
    commit = alice.commit("big", submission_files(**{"weights.bin": payload}), folder="big")

    rc, out = alice.git("push", "origin", "HEAD:users/alice/big", env=TRACE)

    assert rc == 0, "\n".join(line for line in out.splitlines() if "remote:" in line or "error" in line)
    assert "transfer-encoding: chunked" in out.lower()  # the body was streamed, not buffered
    assert any("big: job" in line for line in remote_lines(out))
    assert server.instance.ref("users/alice/big") == commit

    again = client_for(server, tmp_path, "alice", "alice-again")
    rc, out = again.clone("users/alice/big")
    assert rc == 0, out
    assert again.head() == commit
    assert hashlib.sha256((again.workdir / "big" / "weights.bin").read_bytes()).digest() == \
        hashlib.sha256(payload).digest()


def test_fetch_sees_new_commits(server: Server, tmp_path: Path) -> None:
    alice = client_for(server, tmp_path, "alice", "alice").init()
    alice.commit("first", submission_files(), folder="model")
    rc, out = alice.push("HEAD:users/alice/shared")
    assert rc == 0, out

    bob = client_for(server, tmp_path, "olga", "olga")  # an admin: reads every branch
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


def test_other_users_branches_are_private(server: Server, tmp_path: Path) -> None:
    alice = client_for(server, tmp_path, "alice", "alice").init()
    secret = alice.commit("secret", submission_files(), folder="secret")
    assert alice.push("HEAD:users/alice/secret")[0] == 0

    bob = client_for(server, tmp_path, "bob", "bob").init()
    mine = bob.commit("mine", submission_files(), folder="mine")
    assert bob.push("HEAD:users/bob")[0] == 0
    rc, out = bob.git("ls-remote", "origin")
    assert rc == 0 and "refs/heads/users/bob" in out and "users/alice" not in out, out
    for version in ("2", "0"):  # whatever the client asks for, the server speaks v0 to a participant
        rc, out = bob.git("-c", f"protocol.version={version}", "fetch", "origin", secret)
        assert rc != 0 and ("not our ref" in out or "unadvertised object" in out), out
        assert bob.git("cat-file", "-e", secret)[0] != 0, "alice's commit reached bob"
    rc, out = bob.git("fetch", "origin", "refs/heads/users/alice/secret")
    assert rc != 0 and "couldn't find remote ref" in out, out

    clone = client_for(server, tmp_path, "bob", "bob-clone")
    rc, out = clone.clone()
    assert rc == 0, out
    branches = clone.git("branch", "--remotes", check=True)[1]
    assert "users/bob" in branches and "alice" not in branches
    assert clone.git("cat-file", "-e", mine)[0] == 0 and clone.git("cat-file", "-e", secret)[0] != 0

    own = client_for(server, tmp_path, "alice", "alice-clone")
    assert own.clone("users/alice/secret")[0] == 0 and own.head() == secret


def test_admins_and_public_code_see_every_branch(server: Server, tmp_path: Path) -> None:
    alice = client_for(server, tmp_path, "alice", "alice").init()
    secret = alice.commit("open later", submission_files(), folder="later")
    assert alice.push("HEAD:users/alice/later")[0] == 0
    admin = client_for(server, tmp_path, "olga", "olga").init()
    rc, out = admin.git("ls-remote", "origin")
    assert rc == 0 and "refs/heads/users/alice/later" in out
    assert admin.git("fetch", "origin", secret)[0] == 0

    config = server.instance.config_path
    original = config.read_text(encoding="utf-8")
    try:
        config.write_text(original.replace("code_visibility: private", "code_visibility: public"), encoding="utf-8")
        bob = client_for(server, tmp_path, "bob", "bob")
        rc, out = bob.clone("users/alice/later")  # read at the next request: no restart
        assert rc == 0 and bob.head() == secret, out
    finally:
        config.write_text(original, encoding="utf-8")
    rc, out = client_for(server, tmp_path, "bob", "bob-after").clone("users/alice/later")
    assert rc != 0, out
