"""One completed job as the leaderboard sees it, read from its MLflow run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mlflow.entities import Run

from leadersboard import contract as c
from leadersboard.job_index import JobRecord


@dataclass(frozen=True, slots=True)
class Entry:
    """A completed job's result. Every text field is user-controlled: templates escape it."""

    run_id: str
    job_id: str
    benchmark: str
    user: str
    folder: str
    submission_id: str
    commit: str
    method: str
    submitted_at: float | None  # unix seconds, when the job was admitted
    end_time_ms: int  # MLflow's end_time: when the job finished
    auroc: float
    f1_score: float | None
    runtime_seconds: float | None
    scoring: str = "self_reported"  # verified: the platform computed the scores from the job's predictions
    # Further metrics the submission's config asked to show (its `metrics:` list), beside AUROC and F1.
    shown: dict[str, float] = field(default_factory=dict)

    @property
    def finished_at(self) -> float:
        return self.end_time_ms / 1000

    @property
    def date(self) -> float:
        """The date a table shows: when the job was submitted (when it finished, if that is unknown)."""
        return self.submitted_at if self.submitted_at is not None else self.finished_at

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(**data)


def entry_from_run(run: Run, record: JobRecord) -> Entry | None:
    """The job's leaderboard entry: who, what and when from the platform's record of the job, the
    scores from its run; None when the run has no usable AUROC or no end time."""
    metrics = run.data.metrics
    auroc = _number(metrics.get(c.METRIC_AUROC))
    end_time = run.info.end_time
    if auroc is None or end_time is None:
        return None
    return Entry(
        run_id=run.info.run_id,
        job_id=record.job_id,
        benchmark=record.benchmark,
        user=record.user,
        folder=record.folder,
        submission_id=record.submission_id,
        commit=record.commit,
        method=record.method,
        submitted_at=_number(record.created_at),
        end_time_ms=int(end_time),
        auroc=auroc,
        f1_score=_number(metrics.get(c.METRIC_F1)),
        runtime_seconds=_number(metrics.get(c.METRIC_RUNTIME)),
        scoring=record.scoring,
        shown=shown_metrics(run.data.tags.get(c.TAG_SHOWN_METRICS, ""), metrics),
    )


def shown_metrics(listed: str, metrics: dict[str, float]) -> dict[str, float]:
    """The listed metrics the run has, in the listed order; AUROC and F1 have columns of their own."""
    shown = {}
    for name in dict.fromkeys(part.strip() for part in listed.split(",")):
        value = _number(metrics.get(name)) if name and name not in c.RANKED_METRICS else None
        if value is not None:
            shown[name] = value
    return shown


def _number(value: float | None) -> float | None:
    # NaN/inf cannot be ranked, and JSON has no spelling for them.
    return float(value) if value is not None and math.isfinite(value) else None
