"""`leaderboard.json` and `leaderboard.csv`: the ranked rows, machine-readable.

JSON shape (format 2)::

    {"format": 2,
     "generated_at": "2026-11-29T05:20:00Z",
     "benchmarks": [
       {"benchmark": "visa/pcb1", "page": "benchmark/visa.pcb1.html", "scoring": "verified", "completed_jobs": 12,
        "ranking": [ROW, ...]}]}

ROW (also the CSV columns, with `benchmark` first): rank, benchmark, user, submission (the folder name),
method, auroc, f1_score, runtime_seconds, commit (full sha), submitted_at, finished_at (ISO 8601 UTC),
attempts (the user's completed jobs on that benchmark), job_id, run_id, submission_id, scoring
(`verified`: the platform computed the scores from the job's predictions on labels it never saw;
`self_reported`: the scores the job's code logged). A board also says its `scoring` (`mixed` when its
rows differ).
Missing numbers and times are null in JSON and empty in CSV.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from .ranking import Board, Ranked

JSON_FORMAT = 2  # 2: `scoring` on boards and rows
COLUMNS = ["rank", "benchmark", "user", "submission", "method", "auroc", "f1_score", "runtime_seconds", "commit",
           "submitted_at", "finished_at", "attempts", "job_id", "run_id", "submission_id", "scoring"]
# A spreadsheet runs a cell that starts like a formula (OWASP "CSV injection"); a leading ' keeps it text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def iso(unix: float | None) -> str | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def row(board: Board, ranked: Ranked) -> dict[str, Any]:
    entry = ranked.entry
    return {
        "rank": ranked.rank, "benchmark": board.benchmark, "user": entry.user, "submission": entry.folder,
        "method": entry.method, "auroc": entry.auroc, "f1_score": entry.f1_score,
        "runtime_seconds": entry.runtime_seconds, "commit": entry.commit, "submitted_at": iso(entry.submitted_at),
        "finished_at": iso(entry.finished_at), "attempts": ranked.attempts, "job_id": entry.job_id,
        "run_id": entry.run_id, "submission_id": entry.submission_id, "scoring": entry.scoring,
        "metrics": entry.shown,  # JSON only: the further metrics the submission asked to show
    }


def leaderboard_json(boards: list[Board], generated_at: datetime) -> str:
    document = {
        "format": JSON_FORMAT,
        "generated_at": iso(generated_at.timestamp()),
        "benchmarks": [
            {"benchmark": board.benchmark, "page": f"benchmark/{board.slug}.html", "scoring": board.scoring,
             "completed_jobs": len(board.entries), "ranking": [row(board, ranked) for ranked in board.ranking]}
            for board in boards
        ],
    }
    text = json.dumps(document, ensure_ascii=False, indent=1, allow_nan=False)
    # These can only occur inside strings; escaped, the file is safe even when pasted into a <script>.
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e") + "\n"


def leaderboard_csv(boards: list[Board]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for board in boards:
        for ranked in board.ranking:
            values = row(board, ranked)
            writer.writerow([_cell(values[column]) for column in COLUMNS])
    return out.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
