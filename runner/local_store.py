"""Sizing up the MLflow store a submission wrote, before anything of it is read through MLflow.

The store is a SQLite file the job's code wrote: hostile input. It is opened read-only, only its
tables are counted (a view named like one would be a query of the submission's choosing), and a
progress handler ends any query that runs past the deadline. A store over a limit is refused
whole: copying a million metric points would hold the worker for minutes.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

PROGRESS_STEPS = 10_000  # SQLite virtual-machine steps between deadline checks


class CopyRefused(Exception):
    """What the job logged breaks a limit of the copy; the message is the job's failure reason."""


@dataclass(frozen=True)
class CopyLimits:
    runs: int
    metric_points: int
    params: int
    artifact_bytes: int
    seconds: float


@dataclass(frozen=True)
class StoreSize:
    runs: int
    metric_points: int
    params: int


def size_up(store: Path, limits: CopyLimits, deadline: float) -> StoreSize:
    """The store's size; `CopyRefused` when it is no MLflow store or is over a limit."""
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error as exc:
        raise CopyRefused(f"the job's MLflow store could not be opened ({exc})") from exc
    try:
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_STEPS)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"runs", "metrics", "params"} <= tables:
            raise CopyRefused("the job's MLflow store is not one MLflow wrote (runs, metrics or params missing)")
        size = StoreSize(*(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608 (fixed names)
                           for table in ("runs", "metrics", "params")))
    except sqlite3.Error as exc:
        if time.monotonic() > deadline:
            raise CopyRefused(f"reading the job's MLflow store took longer than {limits.seconds:.0f} s") from exc
        raise CopyRefused(f"the job's MLflow store could not be read ({exc})") from exc
    finally:
        conn.close()
    for what, count, limit, setting, fix in (
        ("runs", size.runs, limits.runs, "max_copied_runs", "start fewer runs"),
        ("metric values", size.metric_points, limits.metric_points, "max_metric_points",
         "log fewer steps or fewer metrics"),
        ("params", size.params, limits.params, "max_params", "log fewer params"),
    ):
        if count > limit:
            raise CopyRefused(f"the job logged {count:,} {what}, over the platform's limit of {limit:,} "
                              f"(runner.{setting}); {fix}")
    return size
