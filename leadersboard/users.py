"""Participants and their API tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from . import db
from .names import check_user_name
from .tokens import new_token, token_hash, token_matches


class UserError(Exception):
    """A user command that cannot be carried out (unknown user, name taken, ...)."""


@dataclass(frozen=True)
class User:
    name: str
    created_at: float
    revoked_at: float | None
    active_tokens: int
    admin: bool = False

    @property
    def role(self) -> str:
        return "admin" if self.admin else "participant"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: a participant, an admin (who reads everything, writes no result), or a
    worker host (`worker`: reads every submission's code and writes job results, nothing else)."""

    name: str
    admin: bool = False
    worker: bool = False


class UserStore:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def add(self, name: str, admin: bool = False) -> str:
        """Create `name` and return its first token (shown once, never stored in clear)."""
        check_user_name(name)
        token = new_token()
        now = time.time()
        with db.connect(self.db_path) as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise UserError(f"User {name!r} exists already; use 'leadersboard user token {name}' "
                                "for another token.")
            conn.execute("INSERT INTO users (name, created_at, admin) VALUES (?, ?, ?)", (name, now, int(admin)))
            conn.execute("INSERT INTO tokens (hash, user, created_at) VALUES (?, ?, ?)",
                         (token_hash(token), name, now))
        return token

    def new_token(self, name: str) -> str:
        """Issue another token for an active user (the old ones keep working)."""
        token = new_token()
        with db.connect(self.db_path) as conn:
            row = conn.execute("SELECT revoked_at FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UserError(f"No user {name!r}; see 'leadersboard user list'.")
            if row["revoked_at"] is not None:
                raise UserError(f"User {name!r} is revoked.")
            conn.execute("INSERT INTO tokens (hash, user, created_at) VALUES (?, ?, ?)",
                         (token_hash(token), name, time.time()))
        return token

    def revoke(self, name: str) -> None:
        """Revoke the user and every token of theirs, effective for the next request."""
        now = time.time()
        with db.connect(self.db_path) as conn:
            cur = conn.execute("UPDATE users SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                               (now, name))
            if cur.rowcount == 0:
                known = conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone()
                raise UserError(f"User {name!r} is revoked already." if known
                                else f"No user {name!r}; see 'leadersboard user list'.")
            conn.execute("UPDATE tokens SET revoked_at = ? WHERE user = ? AND revoked_at IS NULL", (now, name))

    def list(self) -> list[User]:
        with db.connect(self.db_path) as conn:
            rows = conn.execute(
                "SELECT u.name, u.created_at, u.revoked_at, u.admin, "
                "(SELECT COUNT(*) FROM tokens t WHERE t.user = u.name AND t.revoked_at IS NULL) AS n "
                "FROM users u ORDER BY u.name"
            ).fetchall()
        return [User(r["name"], r["created_at"], r["revoked_at"], r["n"], bool(r["admin"])) for r in rows]

    def authenticate(self, token: str, name: str | None = None) -> Caller | None:
        """The active user `token` belongs to (and who must be `name`, when given), else None.

        The lookup is by hash, so a guess learns nothing from timing about stored tokens.
        """
        if not token or len(token) > 256:
            return None
        with db.read(self.db_path) as conn:
            row = conn.execute(
                "SELECT t.user, t.hash, u.admin FROM tokens t JOIN users u ON u.name = t.user "
                "WHERE t.hash = ? AND t.revoked_at IS NULL AND u.revoked_at IS NULL",
                (token_hash(token),),
            ).fetchone()
        if row is None or not token_matches(token, row["hash"]):
            return None
        user = str(row["user"])
        if name is not None and name != user:
            return None
        return Caller(user, bool(row["admin"]))
