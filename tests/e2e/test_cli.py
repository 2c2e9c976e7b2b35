"""The operator's and participant's command line: validate, init, users and tokens, and serve's
clean stop (everything it started goes with it)."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from leadersboard.cli.serve import STATE_DUMP
from leadersboard.local.datagen import generate_dataset

from support.files import write_files
from support.folders import BAD_FOLDERS, RULES_INSTANCE, find_message
from support.instances import Instance, create_instance, run_cli, submission_files
from support.servers import launch_server

# ------------------------------------------------------------------------------------------ validate


@pytest.fixture(scope="module")
def rules_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return create_instance(tmp_path_factory.mktemp("cli-rules"), users=(), **RULES_INSTANCE)


def test_validate_accepts_a_good_folder(rules_instance: Instance, tmp_path: Path) -> None:
    folder = tmp_path / "padim"
    write_files(folder, submission_files(**{"utils/helpers.py": "X = 1\n"}))

    result = rules_instance.cli("validate", str(folder), check=False)

    assert result.returncode == 0, result.stderr
    assert "OK: padim would be evaluated on visa/pcb1" in result.stdout


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_validate_refuses_a_bad_folder_with_the_push_message(
    case: str, rules_instance: Instance, tmp_path: Path
) -> None:
    bad = BAD_FOLDERS[case]
    folder = tmp_path / bad.folder
    write_files(folder, bad.files)
    if bad.symlink:
        os.symlink("main.py", folder / bad.symlink)
    if bad.submodule:
        subprocess.run(["git", "init", "--quiet", str(folder / bad.submodule)], check=True)

    result = rules_instance.cli("validate", str(folder), check=False)

    assert result.returncode == 1, result.stdout + result.stderr
    # The same message the pre-receive hook shows for this folder (the expectations are shared).
    find_message(result.stderr.splitlines(), bad.expect)
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------- init


def snapshot(home: Path) -> dict[str, tuple[str, int]]:
    """Every file under `home`: content hash and mtime (ns)."""
    return {
        str(path.relative_to(home)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(home.rglob("*")) if path.is_file()
    }


def test_init_twice_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_cli("init", "--home", str(home))
    assert "created" in first.stdout
    for name in ("leadersboard.yaml", "leadersboard.db", "submissions.git/HEAD",
                 "submissions.git/hooks/pre-receive", "submissions.git/hooks/post-receive"):
        assert (home / name).is_file(), name
    assert os.access(home / "submissions.git/hooks/pre-receive", os.X_OK)
    config = subprocess.run(["git", "config", "--file", str(home / "submissions.git/config"), "--list"],
                            capture_output=True, text=True, check=True).stdout
    assert "receive.advertisepushoptions=true" in config
    before = snapshot(home)
    time.sleep(0.05)  # a rewrite would show as a newer mtime

    second = run_cli("init", "--home", str(home))

    assert "nothing to change" in second.stdout
    assert "created" not in second.stdout
    after = snapshot(home)
    assert sorted(after) == sorted(before)  # no file added or removed
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}  # same contents
    for name in ("leadersboard.yaml", "leadersboard.db", "submissions.git/hooks/pre-receive",
                 "submissions.git/hooks/post-receive"):
        assert after[name][1] == before[name][1], f"{name} was rewritten"


def test_init_through_leadersboard_home(tmp_path: Path) -> None:
    home = tmp_path / "from-env"
    run_cli("init", home=home)
    assert (home / "leadersboard.yaml").is_file() and (home / "submissions.git" / "HEAD").is_file()


# --------------------------------------------------------------------------------------- users, tokens


@pytest.fixture(scope="module")
def unchanged(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """An instance for commands that must leave it as it is."""
    return create_instance(tmp_path_factory.mktemp("cli-users"))


@pytest.mark.parametrize("name", ["Alice", "bad name", "-dash", "x" * 40, "a/b", ""])
def test_user_add_refuses_an_invalid_name(name: str, unchanged: Instance) -> None:
    result = unchanged.cli("user", "add", "--", name, check=False)

    assert result.returncode != 0
    assert "Invalid user name" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # no token was printed
    assert [u["name"] for u in unchanged.query("SELECT name FROM users ORDER BY name")] == ["alice", "bob"]


def test_user_add_refuses_a_taken_name(unchanged: Instance) -> None:
    result = unchanged.cli("user", "add", "alice", check=False)
    assert result.returncode != 0
    assert "exists already" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_user_list_and_revoke(instance: Instance) -> None:
    def listing() -> dict[str, str]:
        lines = instance.cli("user", "list").stdout.splitlines()
        return {line.split("\t")[0]: line for line in lines}

    users = listing()
    assert sorted(users) == ["alice", "bob"]
    assert "active" in users["alice"] and "tokens=1" in users["alice"]

    assert "revoked bob" in instance.cli("user", "revoke", "bob").stdout
    users = listing()
    assert "revoked" in users["bob"] and "tokens=0" in users["bob"]
    assert "active" in users["alice"]
    again = instance.cli("user", "revoke", "bob", check=False)
    assert again.returncode != 0 and "revoked already" in again.stderr
    unknown = instance.cli("user", "revoke", "nobody", check=False)
    assert unknown.returncode != 0 and "No user 'nobody'" in unknown.stderr


def test_tokens_are_random_and_stored_only_as_hashes(instance: Instance) -> None:
    tokens = list(instance.tokens.values()) + [instance.add_user(f"user{n}") for n in range(3)]

    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        secret = token.removeprefix("lbt_")
        raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
        assert len(raw) >= 32, token
    stored = {row["hash"] for row in instance.query("SELECT hash FROM tokens")}
    assert len(stored) == len(tokens)
    assert not stored & set(tokens)
    # The token text is nowhere in the instance: not in the database, its journal, or any other file.
    files = [p for p in instance.home.rglob("*") if p.is_file()]
    assert any(p.name == "leadersboard.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for token in tokens:
            assert token.encode() not in data, f"token found in {path}"
            assert token.removeprefix("lbt_").encode() not in data, f"token found in {path}"


# ---------------------------------------------------------------------------------------------- serve


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_serve_stops_everything_it_started_on_sigterm(make_instance: Callable[..., Instance]) -> None:
    """Without a Redis URL, serve starts its own redis-server, and workers; SIGTERM stops them all."""
    server = launch_server(make_instance(), redis_url=None, workers=1)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while True:  # the worker reports to Redis once it is up
            health = httpx.get(f"{server.base_url}/healthz", timeout=5).json()
            if health.get("workers") == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert health["redis"] == "ok" and health["workers"] == "ok", health
        assert httpx.get(server.web_url, timeout=5).status_code == 200  # the web form, stopped with the rest
        children = _descendants(server.process.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in children]
        assert any(b"redis-server" in c for c in commands), commands
        assert any(b" worker" in c for c in commands), commands

        # SIGUSR1 writes where serve's threads and tasks are, and changes nothing.
        server.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while f"end of the {STATE_DUMP}" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)  # the dump is written a task at a time
        dump = server.log().split(f"{STATE_DUMP} (SIGUSR1)", 1)[-1]
        assert "Current thread" in dump and "name='dependency checks'" in dump, server.log()
        assert f"end of the {STATE_DUMP}" in dump, server.log()
        assert httpx.get(f"{server.base_url}/healthz", timeout=5).json()["redis"] == "ok"

        server.stop()

        deadline = time.monotonic() + 15
        while {pid for pid in children if _alive(pid)} and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children if _alive(pid)}
        assert not left, f"still running after serve stopped: {left}\n{server.log()}"
    finally:
        server.stop()
        for pid in children:  # what serve left behind, if it did
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_dataset_add_list_show_remove(instance: Instance, tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "mvtec", "mvtec", ("bottle", "cable"), normal=4, anomalous=1, size=32)
    added = instance.cli("dataset", "add", "mvtec", str(data), "--scoring", "verified")
    assert "mvtec layout, 2 categories (bottle, cable), verified, version sha256:" in added.stdout
    listed = instance.cli("dataset", "list").stdout.splitlines()
    assert f"mvtec\tverified\tmvtec\tbottle,cable\t{data.resolve()}" in listed
    shown = instance.cli("dataset", "show", "mvtec").stdout
    assert "layout: mvtec" in shown and "categories: bottle, cable" in shown and "version: sha256:" in shown
    assert instance.cli("dataset", "remove", "mvtec").stdout.strip() == "removed data set mvtec"
    assert "mvtec" not in instance.cli("dataset", "list").stdout
    gone = instance.cli("dataset", "remove", "mvtec", check=False)
    assert gone.returncode == 1 and "No data set 'mvtec' (registered: visa)" in gone.stderr


def test_dataset_add_refuses_a_folder_without_categories(instance: Instance, tmp_path: Path) -> None:
    before = instance.config_path.read_text()
    (tmp_path / "empty").mkdir()
    refused = instance.cli("dataset", "add", "other", str(tmp_path / "empty"), check=False)
    assert refused.returncode == 1 and "Data set other not registered: no category found in" in refused.stderr
    wrong = instance.cli("dataset", "add", "other", str(tmp_path), "--layout", "mvtec", check=False)
    assert wrong.returncode == 1 and "in the mvtec layout" in wrong.stderr
    assert instance.config_path.read_text() == before
