"""Users and tokens in the instance database: tokens stored only as hashes, revocation at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from leadersboard import db
from leadersboard.jobs import ACTIVE_STATUSES, JobStatus
from leadersboard.tokens import token_hash
from leadersboard.users import Caller, UserError, UserStore


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    db.create_schema(tmp_path / "lb.db")
    return UserStore(tmp_path / "lb.db")


def test_a_token_authenticates_its_user_only(users: UserStore) -> None:
    alice, bob = users.add("alice"), users.add("bob")
    assert alice != bob and alice.startswith("lbt_") and len(alice) > 40
    assert users.authenticate(alice) == Caller("alice") == users.authenticate(alice, "alice")
    assert users.authenticate(alice, "bob") is None
    assert users.authenticate(alice + "x") is None and users.authenticate("") is None
    assert users.authenticate("x" * 300) is None


def test_tokens_are_stored_as_hashes_only(users: UserStore, tmp_path: Path) -> None:
    token = users.add("alice")
    conn = sqlite3.connect(tmp_path / "lb.db")
    stored = [row[0] for row in conn.execute("SELECT hash FROM tokens")]
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert stored == [token_hash(token)] and token not in dump


def test_more_tokens_and_revocation(users: UserStore) -> None:
    first = users.add("alice")
    second = users.new_token("alice")
    assert users.authenticate(first) == users.authenticate(second) == Caller("alice")
    assert [(u.name, u.active_tokens) for u in users.list()] == [("alice", 2)]
    users.revoke("alice")
    assert users.authenticate(first) is None and users.authenticate(second) is None
    with pytest.raises(UserError, match="revoked already"):
        users.revoke("alice")
    with pytest.raises(UserError, match="is revoked"):
        users.new_token("alice")


def test_admins(users: UserStore) -> None:
    token = users.add("olga", admin=True)
    assert users.authenticate(token) == Caller("olga", admin=True)
    assert [(u.name, u.role) for u in users.list()] == [("olga", "admin")]


def test_an_older_database_gains_the_admin_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE users (name TEXT PRIMARY KEY, created_at REAL NOT NULL, revoked_at REAL);"
                       "INSERT INTO users VALUES ('old', 1, NULL);")
    conn.close()
    db.create_schema(path)
    db.create_schema(path)  # twice: nothing more happens
    assert [(u.name, u.admin) for u in UserStore(path).list()] == [("old", False)]


def test_names_are_unique_and_checked(users: UserStore) -> None:
    users.add("alice")
    with pytest.raises(UserError, match="exists already"):
        users.add("alice")
    with pytest.raises(UserError, match="No user 'zed'"):
        users.revoke("zed")


def test_job_statuses() -> None:
    assert [s.value for s in JobStatus] == ["pending", "running", "completed", "failed", "cancelled"]
    assert ACTIVE_STATUSES == (JobStatus.PENDING, JobStatus.RUNNING)
    assert [s.run_status for s in JobStatus] == ["SCHEDULED", "RUNNING", "FINISHED", "FAILED", "KILLED"]
    assert JobStatus.of(None) == JobStatus.PENDING and JobStatus.of("completed") == JobStatus.COMPLETED
    assert JobStatus.of("hacked") == JobStatus.FAILED and not JobStatus.of("hacked").active
    assert f"{JobStatus.RUNNING}" == "running"
