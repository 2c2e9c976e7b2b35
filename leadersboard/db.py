"""The instance's SQLite database: users, tokens, submissions, the job index and worker tokens.

One short-lived connection per unit of work; WAL mode lets the API, the hooks' handlers and the
CLI read while one of them writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    revoked_at REAL,
    admin INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name),
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    folder TEXT NOT NULL,
    ref TEXT NOT NULL,
    tree_id TEXT NOT NULL,
    entrypoint TEXT NOT NULL,
    config_file TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    metadata TEXT NOT NULL,
    resource_class TEXT,
    run INTEGER NOT NULL,
    created_at REAL NOT NULL,
    job_id TEXT,
    handed_over INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS submissions_user ON submissions(user, created_at);
CREATE INDEX IF NOT EXISTS submissions_job ON submissions(job_id);
-- An index only: a job's state lives in its MLflow run (see leadersboard/jobs.py).
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    submission_id TEXT NOT NULL REFERENCES submissions(id),
    user TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    resource_class TEXT,
    created_at REAL NOT NULL,
    scoring TEXT NOT NULL DEFAULT 'self_reported'
);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs(user, created_at);
CREATE INDEX IF NOT EXISTS jobs_run ON jobs(run_id);  -- a run's owner, for the MLflow gateway
CREATE TABLE IF NOT EXISTS worker_tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked_at REAL
);
"""


# Columns added since the table was first made: (table, column, its definition). Added to an older
# instance's database by `create_schema` (which `init` and `serve` run), never removed.
ADDED_COLUMNS = (("users", "admin", "INTEGER NOT NULL DEFAULT 0"),
                 ("jobs", "scoring", "TEXT NOT NULL DEFAULT 'self_reported'"))


def create_schema(path: Path) -> None:
    """Make the tables, or bring an older instance's up to date; safe to run any number of times."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)  # runs in its own transaction
        for table, column, definition in ADDED_COLUMNS:
            if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        conn.commit()
    finally:
        conn.close()


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that commits on success and rolls back on error."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


@contextmanager
def read(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection for reads alone (a token's lookup on every request): no write lock, so under WAL
    readers never wait for each other or for a writer; `connect`'s BEGIN IMMEDIATE would queue them."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        yield conn
    finally:
        conn.close()
