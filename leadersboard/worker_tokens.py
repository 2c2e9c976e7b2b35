"""Tokens for worker hosts: what lets a machine join the platform by its URL alone.

A worker token reads every submission's code (git), fetches the queue's connection and writes job
results to MLflow; it pushes nothing and is no user: the REST API and the web form refuse it.
Stored only as a hash, as users' tokens are; one active token per worker name.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from . import db
from .names import check_user_name
from .tokens import token_hash, token_matches

PREFIX = "lbw_"  # tells a worker token from a user's (`lbt_`) at a glance, and in a refusal


class WorkerTokenError(Exception):
    """A worker-token command that cannot be carried out (unknown name, name in use, ...)."""


@dataclass(frozen=True)
class WorkerToken:
    name: str
    created_at: float
    revoked_at: float | None


def is_worker_token(token: str) -> bool:
    return token.startswith(PREFIX)


class WorkerTokenStore:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def add(self, name: str) -> str:
        """A new token for worker host `name` (shown once); a revoked name may be given a new one."""
        check_user_name(name)
        token = PREFIX + secrets.token_urlsafe(32)
        with db.connect(self.db_path) as conn:
            row = conn.execute("SELECT revoked_at FROM worker_tokens WHERE name = ?", (name,)).fetchone()
            if row is not None and row["revoked_at"] is None:
                raise WorkerTokenError(f"Worker {name!r} has an active token; revoke it first "
                                       f"('leadersboard worker-token revoke {name}').")
            conn.execute("INSERT OR REPLACE INTO worker_tokens (name, hash, created_at, revoked_at) "
                         "VALUES (?, ?, ?, NULL)", (name, token_hash(token), time.time()))
        return token

    def revoke(self, name: str) -> None:
        """Effective for the worker's next request (a job it runs now can no longer write its results)."""
        with db.connect(self.db_path) as conn:
            cur = conn.execute("UPDATE worker_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                               (time.time(), name))
            if cur.rowcount == 0:
                known = conn.execute("SELECT 1 FROM worker_tokens WHERE name = ?", (name,)).fetchone()
                raise WorkerTokenError(f"Worker {name!r} is revoked already." if known
                                       else f"No worker {name!r}; see 'leadersboard worker-token list'.")

    def list(self) -> list[WorkerToken]:
        with db.connect(self.db_path) as conn:
            rows = conn.execute("SELECT name, created_at, revoked_at FROM worker_tokens ORDER BY name").fetchall()
        return [WorkerToken(r["name"], r["created_at"], r["revoked_at"]) for r in rows]

    def authenticate(self, token: str, name: str | None = None) -> str | None:
        """The worker name an active `token` belongs to (and which must be `name`, when given), else None."""
        if not is_worker_token(token) or len(token) > 256:
            return None
        with db.read(self.db_path) as conn:
            row = conn.execute("SELECT name, hash FROM worker_tokens WHERE hash = ? AND revoked_at IS NULL",
                               (token_hash(token),)).fetchone()
        if row is None or not token_matches(token, row["hash"]):
            return None
        if name is not None and name != row["name"]:
            return None
        return str(row["name"])
