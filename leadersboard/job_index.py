"""The platform's own record of every job: who submitted it, on which benchmark, from which commit.

Written once, when the job is made, into the instance database (table `jobs`, joined with
`submissions`); never changed afterwards. The API's ownership checks and the leaderboard read a
job's owner and benchmark from here, not from the MLflow run's tags, so nothing written into
MLflow later can move a result to another user or another benchmark.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import db

_SELECT = (
    "SELECT j.id AS job_id, j.run_id, j.user, j.benchmark, j.submission_id, j.resource_class, j.created_at, "
    "j.scoring, s.folder, s.commit_id, s.entrypoint, s.config_file, s.metadata "
    "FROM jobs j JOIN submissions s ON s.id = j.submission_id"
)
_AWAITING = (
    "SELECT s.job_id, '' AS run_id, s.user, s.benchmark, s.id AS submission_id, s.resource_class, s.created_at, "
    "'' AS scoring, s.folder, s.commit_id, s.entrypoint, s.config_file, s.metadata "
    "FROM submissions s WHERE s.job_id = ?"
)
_CLASSES = "SELECT id, resource_class FROM jobs WHERE id IN"
IN_CHUNK = 500  # run ids per query (SQLite allows 999 parameters by default, older builds)


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    run_id: str
    user: str
    benchmark: str
    submission_id: str
    folder: str
    commit: str
    entrypoint: str
    config_file: str
    resource_class: str | None
    created_at: float  # when its submission was admitted
    method: str  # submission.yaml's `method`, or ""
    scoring: str = "self_reported"  # how its benchmark was scored


class JobIndex:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def add(self, job_id: str, run_id: str, submission_id: str, user: str, benchmark: str,
            resource_class: str | None, created_at: float, scoring: str = "self_reported") -> None:
        """Record a job once (a replayed event changes nothing)."""
        with db.connect(self.db_path) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO jobs (id, run_id, submission_id, user, benchmark, resource_class, created_at, "
                "scoring) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, run_id, submission_id, user, benchmark, resource_class, created_at, scoring))

    def by_job(self, job_id: str) -> JobRecord | None:
        return self._one(f"{_SELECT} WHERE j.id = ?", job_id)

    def awaiting(self, job_id: str) -> JobRecord | None:
        """A job its submission was admitted with but that is not made yet (a push returns before its
        jobs exist): its record without a run (`run_id` empty)."""
        return self._one(_AWAITING, job_id)

    def by_run(self, run_id: str) -> JobRecord | None:
        return self._one(f"{_SELECT} WHERE j.run_id = ?", run_id)

    def by_runs(self, run_ids: list[str]) -> dict[str, JobRecord]:
        """The records of those runs that are jobs (run id -> record)."""
        found: dict[str, JobRecord] = {}
        with db.connect(self.db_path) as conn:
            for start in range(0, len(run_ids), IN_CHUNK):
                chunk = run_ids[start:start + IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(f"{_SELECT} WHERE j.run_id IN ({marks})", chunk):
                    found[row["run_id"]] = _record(row)
        return found

    def of_user(self, user: str) -> list[JobRecord]:
        """The user's jobs, newest first."""
        with db.connect(self.db_path) as conn:
            rows = conn.execute(f"{_SELECT} WHERE j.user = ? ORDER BY j.created_at DESC, j.id", (user,)).fetchall()
        return [_record(row) for row in rows]

    def count_by_class(self) -> dict[str | None, int]:
        """How many jobs were ever made, per resource class (None: the job named none)."""
        with db.connect(self.db_path) as conn:
            rows = conn.execute("SELECT resource_class, COUNT(*) AS n FROM jobs GROUP BY resource_class").fetchall()
        return {row["resource_class"]: int(row["n"]) for row in rows}

    def classes(self, job_ids: list[str]) -> dict[str, str | None]:
        """The resource class of each of those jobs that this instance made (job id -> class)."""
        found: dict[str, str | None] = {}
        with db.connect(self.db_path) as conn:
            for start in range(0, len(job_ids), IN_CHUNK):
                chunk = job_ids[start:start + IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(f"{_CLASSES} ({marks})", chunk):
                    found[row["id"]] = row["resource_class"]
        return found

    def _one(self, query: str, key: str) -> JobRecord | None:
        with db.connect(self.db_path) as conn:
            row = conn.execute(query, (key,)).fetchone()
        return _record(row) if row else None


def _record(row: Any) -> JobRecord:
    metadata = json.loads(row["metadata"] or "{}")
    method = metadata.get("method") if isinstance(metadata, dict) else None
    return JobRecord(
        job_id=row["job_id"], run_id=row["run_id"], user=row["user"], benchmark=row["benchmark"],
        submission_id=row["submission_id"], folder=row["folder"], commit=row["commit_id"],
        entrypoint=row["entrypoint"], config_file=row["config_file"], resource_class=row["resource_class"],
        created_at=float(row["created_at"]), method=method if isinstance(method, str) else "",
        scoring=row["scoring"] or "self_reported")
