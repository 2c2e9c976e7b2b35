"""Submission records: one folder of one commit on a user's branch."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import db

_NAMESPACE = uuid.UUID("5b0d6c1e-8f53-4a7c-9a55-0c1b7e3d2f10")


def submission_id(user: str, commit_id: str, folder: str) -> str:
    """Stable per user + commit + folder: the same event always names the same submission, and two users
    who push the same commit (a shared template, a teammate's branch) submit two."""
    return uuid.uuid5(_NAMESPACE, f"{user}:{commit_id}:{folder}").hex


def job_id(submission: str, attempt: int = 0) -> str:
    """Stable per submission and attempt: replaying an event creates no second job."""
    return uuid.uuid5(_NAMESPACE, f"job:{submission}:{attempt}").hex


@dataclass
class Submission:
    id: str
    user: str
    commit_id: str
    folder: str
    ref: str
    tree_id: str
    entrypoint: str
    config_file: str
    benchmark: str
    metadata: dict[str, Any] = field(default_factory=dict)
    resource_class: str | None = None
    run: bool = True
    created_at: float = field(default_factory=time.time)
    job_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Submission:
        return cls(**data)


class SubmissionStore:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def record_all(self, subs: list[Submission]) -> int:
        """Insert the submissions in one transaction (those recorded already are left alone); how many were new.

        One without a job to run (run=false) is handed over by being recorded.
        """
        with db.connect(self.db_path) as conn:
            added = 0
            for sub in subs:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO submissions (id, user, commit_id, folder, ref, tree_id, entrypoint, "
                    "config_file, benchmark, metadata, resource_class, run, created_at, job_id, handed_over) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (sub.id, sub.user, sub.commit_id, sub.folder, sub.ref, sub.tree_id, sub.entrypoint,
                     sub.config_file, sub.benchmark, json.dumps(sub.metadata, default=str), sub.resource_class,
                     int(sub.run), sub.created_at, sub.job_id, int(not sub.run)),
                )
                added += cur.rowcount
            return added

    def mark_handed_over(self, sub_id: str) -> None:
        with db.connect(self.db_path) as conn:
            conn.execute("UPDATE submissions SET handed_over = 1 WHERE id = ?", (sub_id,))

    def get(self, sub_id: str) -> Submission | None:
        with db.connect(self.db_path) as conn:
            row = conn.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
        return _submission(row) if row else None

    def job_count(self, sub_id: str) -> int:
        """How many jobs the submission has had (the next job's attempt number)."""
        with db.connect(self.db_path) as conn:
            row = conn.execute("SELECT COUNT(*) AS n FROM jobs WHERE submission_id = ?", (sub_id,)).fetchone()
        return int(row["n"])

    def latest_job_id(self, sub_id: str) -> str | None:
        """The id of the submission's newest job: the last one made, else the one it was admitted with and
        that is being made (None: it has none, e.g. pushed with run=false)."""
        with db.connect(self.db_path) as conn:
            # rowid: the order the jobs were made in (created_at is the submission's, the same for every attempt)
            row = conn.execute("SELECT id FROM jobs WHERE submission_id = ? ORDER BY rowid DESC LIMIT 1",
                               (sub_id,)).fetchone()
            if row is None:
                row = conn.execute("SELECT job_id AS id FROM submissions WHERE id = ?", (sub_id,)).fetchone()
        return row["id"] if row and row["id"] else None

    def not_handed_over(self, before: float) -> list[Submission]:
        """Submissions recorded before `before` whose job was never created or queued (the reconciler's list)."""
        with db.connect(self.db_path) as conn:
            rows = conn.execute(
                "SELECT * FROM submissions WHERE handed_over = 0 AND run = 1 AND created_at < ? ORDER BY created_at",
                (before,)).fetchall()
        return [_submission(r) for r in rows]


def _submission(row: Any) -> Submission:
    values = dict(row)
    values.pop("handed_over")
    values["metadata"] = json.loads(values["metadata"])
    values["run"] = bool(values["run"])
    return Submission(**values)
