"""Bad pushes over real git + HTTP: each is rejected whole, says which rule, file (and line) and fix,
and leaves every ref of the bare repository as it was, spending no quota."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis

from leadersboard.contract import REJECTIONS_KEY, active_key, hourly_key
from leadersboard.local.redis_server import RedisServer

from support.folders import BAD_FOLDERS, RULES_INSTANCE, BadFolder, find_message
from support.git import GitClient, git_env, remote_lines
from support.instances import Instance, create_instance, submission_files
from support.servers import Server, running_server

REJECTED = "LeadersBoard: push rejected, nothing was changed"
RULE_NAMED = re.compile(r"\[([a-z-]+)\] ")  # a problem's line starts with its rule


@dataclass
class Env:
    instance: Instance
    server: Server
    base: str  # the commit on users/alice/base
    tmp: Path

    _count = 0

    def clone_base(self, user: str = "alice") -> GitClient:
        """A fresh clone of `main` (alice's base commit) by `user`, with that user's valid token."""
        Env._count += 1
        client = GitClient(self.tmp / f"case-{Env._count}", self.server.url_for(user), user)
        rc, out = client.clone("main")
        assert rc == 0, out
        return client


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Env]:
    inst = create_instance(tmp_path_factory.mktemp("rules"), **RULES_INSTANCE)
    with running_server(inst, redis_server) as server:
        tmp = tmp_path_factory.mktemp("rules-work")
        client = GitClient(tmp / "base", server.url_for("alice"), "alice").init()
        base = client.commit("base", submission_files(), folder="model")
        rc, out = client.push("HEAD:users/alice/base")
        assert rc == 0, out
        # Published on main by the operator: every participant fetches main (others' branches are private).
        subprocess.run(["git", "--git-dir", str(inst.repo), "update-ref", "refs/heads/main", base], check=True,
                       env=git_env(inst.home))
        yield Env(inst, server, base, tmp)


def add_bad_folder(client: GitClient, case: BadFolder) -> None:
    """Commit `case`'s folder next to a new good folder (so the push is rejected as a whole)."""
    client.write(submission_files(), "fine")
    client.write(case.files, case.folder)
    folder = client.workdir / case.folder
    if case.symlink:
        os.symlink("main.py", folder / case.symlink)
    client.git("add", "--all", check=True)
    if case.submodule:
        # A gitlink entry, as `git submodule add` leaves it (the commit need not exist here).
        client.git("update-index", "--add", "--cacheinfo",
                   f"160000,{'ab' * 20},{case.folder}/{case.submodule}", check=True)
    client.git("commit", "--quiet", "-m", f"bad {case.folder}", check=True)


def folder_case(name: str) -> Callable[[Env], tuple[GitClient, str, bool]]:
    def prepare(env: Env) -> tuple[GitClient, str, bool]:
        client = env.clone_base()
        add_bad_folder(client, BAD_FOLDERS[name])
        return client, f"HEAD:users/alice/{name}", False

    return prepare


def good_commit(env: Env, user: str = "alice") -> GitClient:
    client = env.clone_base(user)
    client.commit("good", submission_files(), folder="another")
    return client


def other_users_branch(env: Env) -> tuple[GitClient, str, bool]:
    return good_commit(env), "HEAD:users/bob/topic", False


def outside_users(env: Env) -> tuple[GitClient, str, bool]:
    return good_commit(env), "HEAD:refs/heads/main", False


def deletion(env: Env) -> tuple[GitClient, str, bool]:
    return env.clone_base(), ":users/alice/base", False


def force_push(env: Env) -> tuple[GitClient, str, bool]:
    client = env.clone_base()
    client.git("commit", "--quiet", "--amend", "-m", "rewritten history", check=True)
    return client, "HEAD:users/alice/base", True


RULE_CASES: dict[str, tuple[Callable[[Env], tuple[GitClient, str, bool]], tuple[str, ...]]] = {
    **{name: (folder_case(name), case.expect) for name, case in BAD_FOLDERS.items()},
    "another-users-branch": (other_users_branch, (
        "[branch] users/bob/topic:", "you (alice) may not push to this branch",
        "Fix: it belongs to another user; push to users/alice or users/alice/<topic>")),
    "branch-outside-users": (outside_users, (
        "[branch] main:", "you (alice) may not push to this branch",
        "Fix: only users/alice and users/alice/<topic> are yours")),
    "deletion": (deletion, (
        "[history] users/alice/base:", "deleting a branch is not allowed",
        "Fix: submission history is append-only")),
    "force-push": (force_push, (
        "[history] users/alice/base:", "not a fast-forward", "force-pushing is not allowed",
        "Fix: run 'git pull --rebase origin users/alice/base'")),
}


@pytest.mark.parametrize("case", list(RULE_CASES))
def test_bad_push_is_rejected_whole_with_rule_file_and_fix(
    case: str, env: Env, redis_client: redis.Redis
) -> None:
    prepare, expect = RULE_CASES[case]
    client, refspec, force = prepare(env)
    before = env.instance.refs()
    jobs_before = {row["id"] for row in env.instance.query("SELECT id FROM jobs")}

    rc, out = client.push(refspec, force=force)

    assert rc != 0, out
    assert "pre-receive hook declined" in out, out
    lines = remote_lines(out)
    assert any(REJECTED in line for line in lines), out
    find_message(lines, expect)
    assert env.instance.refs() == before
    assert env.instance.ref("users/alice/base") == env.base
    # A refused push spends no quota. (The module's reconciler may count alice's pending base job
    # back into her active slots at any moment after the flush: that one is not the push's.)
    assert redis_client.zcard(hourly_key("alice")) == 0
    active = {member.decode() for member in cast(list[bytes], redis_client.zrange(active_key("alice"), 0, -1))}
    assert active <= jobs_before, active
    # Counted for GET /metrics once under each rule the push broke (Redis is flushed before each test).
    broken = {match.group(1) for line in lines if (match := RULE_NAMED.match(line.strip()))}
    counted = cast(dict[bytes, bytes], redis_client.hgetall(REJECTIONS_KEY))
    assert broken and {rule.decode(): int(n) for rule, n in counted.items()} == dict.fromkeys(broken, 1), out


def test_every_broken_rule_is_reported_in_one_rejection(env: Env) -> None:
    """Several broken folders in one push: one rejection that lists each problem."""
    client = env.clone_base()
    for name in ("syntax-error", "yaml-list"):
        case = BAD_FOLDERS[name]
        client.write(case.files, name)
    client.commit("two broken folders")
    before = env.instance.refs()

    rc, out = client.push("HEAD:users/alice/two-broken")

    assert rc != 0
    lines = remote_lines(out)
    find_message(lines, ("[entrypoint] syntax-error/main.py line 3:", "Python syntax error"))
    find_message(lines, ("[config] yaml-list/config.yaml:", "not a list"))
    assert env.instance.refs() == before


@dataclass(frozen=True)
class Credentials:
    user: str | None
    token: str | None  # None: the user's real token
    git_says: str


def _token_case(env: Env, name: str) -> Credentials:
    if name == "no-token":
        return Credentials(None, None, "could not read Username")
    if name == "wrong-token":
        return Credentials("alice", "lbt_" + "x" * 43, "Authentication failed")
    # revoked: a user whose token works, revoked with the CLI while the server runs.
    env.instance.add_user("carol")
    return Credentials("carol", None, "Authentication failed")


@pytest.mark.parametrize("name", ["no-token", "wrong-token", "revoked-token"])
def test_push_without_a_valid_token_is_refused(name: str, env: Env) -> None:
    creds = _token_case(env, name)
    user = creds.user or "alice"
    client = good_commit(env, "carol" if name == "revoked-token" else "alice")
    if name == "revoked-token":
        # The token works before the revocation ...
        rc, out = client.git("ls-remote", "origin")
        assert rc == 0, out
        rc, out = client.push("HEAD:users/carol/before")
        assert rc == 0, out
        env.instance.cli("user", "revoke", "carol")
        client.commit("after revocation", submission_files(), folder="later")
    url = env.server.url_for(creds.user, creds.token)
    client.git("remote", "set-url", "origin", url, check=True)
    before = env.instance.refs()

    rc, out = client.push(f"HEAD:users/{user}/denied")

    # ... and stops working at once.
    assert rc != 0, out
    assert creds.git_says in out, out
    assert env.instance.refs() == before

    # The HTTP answer itself: 401 with a Basic challenge, for both services.
    auth = None if creds.user is None else (creds.user, creds.token or env.instance.tokens[creds.user])
    with httpx.Client(timeout=10) as http:
        for service in ("git-receive-pack", "git-upload-pack"):
            answer = http.get(f"{env.server.git_url}/info/refs", params={"service": service}, auth=auth)
            assert answer.status_code == 401, answer.text
            assert answer.headers["www-authenticate"].startswith("Basic "), answer.headers
