"""Worker tokens in the instance database: hashed, one active per worker name, revoked at once, and
never taken for a user's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from leadersboard import db
from leadersboard.names import InvalidName
from leadersboard.users import UserStore
from leadersboard.worker_tokens import WorkerTokenError, WorkerTokenStore


@pytest.fixture
def store(tmp_path: Path) -> WorkerTokenStore:
    db.create_schema(tmp_path / "lb.db")
    return WorkerTokenStore(tmp_path / "lb.db")


def test_a_worker_token_names_its_host_and_is_stored_hashed(store: WorkerTokenStore, tmp_path: Path) -> None:
    token = store.add("gpu-host-1")
    assert token.startswith("lbw_") and len(token) > 40
    assert store.authenticate(token) == "gpu-host-1" == store.authenticate(token, "gpu-host-1")
    assert store.authenticate(token, "gpu-host-2") is None
    assert store.authenticate(token + "x") is None and store.authenticate("") is None
    conn = sqlite3.connect(tmp_path / "lb.db")
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert token not in dump


def test_one_active_token_per_name_and_revocation(store: WorkerTokenStore) -> None:
    first = store.add("gpu1")
    with pytest.raises(WorkerTokenError, match="revoke it first"):
        store.add("gpu1")
    store.revoke("gpu1")
    assert store.authenticate(first) is None
    with pytest.raises(WorkerTokenError, match="revoked already"):
        store.revoke("gpu1")
    with pytest.raises(WorkerTokenError, match="No worker 'nobody'"):
        store.revoke("nobody")
    second = store.add("gpu1")  # a revoked host is given a new token
    assert store.authenticate(second) == "gpu1" and store.authenticate(first) is None
    assert [(w.name, w.revoked_at is None) for w in store.list()] == [("gpu1", True)]


def test_names_follow_the_user_name_rules(store: WorkerTokenStore) -> None:
    with pytest.raises(InvalidName):
        store.add("GPU host")


def test_worker_and_user_tokens_do_not_cross(store: WorkerTokenStore, tmp_path: Path) -> None:
    users = UserStore(tmp_path / "lb.db")
    user_token, worker_token = users.add("alice"), store.add("alice")
    assert users.authenticate(worker_token) is None
    assert store.authenticate(user_token) is None
