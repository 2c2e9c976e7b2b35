"""Job records: one evaluation of one submission, and its status."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import db

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
ACTIVE_STATUSES = ("pending", "running")


@dataclass
class Job:
    id: str
    submission_id: str
    user: str
    benchmark: str
    status: str = "pending"
    resource_class: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobStore:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def create(self, job: Job) -> bool:
        """Insert `job`; False when a job with its id exists already (events are replayed safely)."""
        with db.connect(self.db_path) as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO jobs (id, submission_id, user, benchmark, status, resource_class, "
                "created_at, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.submission_id, job.user, job.benchmark, job.status, job.resource_class,
                 job.created_at, json.dumps(job.metrics)),
            )
            return cur.rowcount == 1

    def get(self, job_id: str) -> Job | None:
        with db.connect(self.db_path) as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def for_user(self, user: str) -> list[Job]:
        with db.connect(self.db_path) as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE user = ? ORDER BY created_at DESC, id",
                                (user,)).fetchall()
        return [_job(r) for r in rows]


def _job(row: Any) -> Job:
    values = dict(row)
    values["metrics"] = json.loads(values["metrics"])
    return Job(**values)
