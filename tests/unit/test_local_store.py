"""Sizing up a job's own MLflow store (a file the job wrote) before copying it, and the range of
ranked scores."""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from leadersboard.runner.job import ranked_metric_problem
from leadersboard.runner.local_store import CopyLimits, CopyRefused, StoreSize, size_up

LIMITS = CopyLimits(runs=3, metric_points=100, params=10, artifact_bytes=1000, seconds=5)


def store(tmp_path: Path, runs: int = 1, points: int = 10, params: int = 2, metrics_view: bool = False) -> Path:
    path = tmp_path / "mlflow.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (run_uuid TEXT)")
    conn.execute("CREATE TABLE params (key TEXT)")
    if metrics_view:  # a query of the job's choosing under a table's name
        conn.execute("CREATE VIEW metrics AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                     "SELECT x FROM n")
    else:
        conn.execute("CREATE TABLE metrics (key TEXT)")
        conn.executemany("INSERT INTO metrics VALUES (?)", [("m",)] * points)
    conn.executemany("INSERT INTO runs VALUES (?)", [("r",)] * runs)
    conn.executemany("INSERT INTO params VALUES (?)", [("p",)] * params)
    conn.commit()
    conn.close()
    return path


def test_a_store_within_the_limits(tmp_path: Path) -> None:
    assert size_up(store(tmp_path), LIMITS, time.monotonic() + 5) == StoreSize(1, 10, 2)


@pytest.mark.parametrize(("sizes", "message"), [
    ({"runs": 4}, "the job logged 4 runs, over the platform's limit of 3 (runner.max_copied_runs); start fewer runs"),
    ({"points": 101}, "101 metric values, over the platform's limit of 100 (runner.max_metric_points)"),
    ({"params": 11}, "11 params, over the platform's limit of 10 (runner.max_params)"),
])
def test_over_a_limit(tmp_path: Path, sizes: dict[str, Any], message: str) -> None:
    with pytest.raises(CopyRefused) as refused:
        size_up(store(tmp_path, **sizes), LIMITS, time.monotonic() + 5)
    assert message in str(refused.value)


def test_a_view_in_place_of_a_table_is_no_mlflow_store(tmp_path: Path) -> None:
    with pytest.raises(CopyRefused, match="is not one MLflow wrote"):
        size_up(store(tmp_path, metrics_view=True), LIMITS, time.monotonic() + 5)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CopyRefused, match="could not be read"):
        size_up(path, LIMITS, time.monotonic() + 5)


@pytest.mark.parametrize(("metrics", "problem"), [
    ({"auroc": 0.9, "f1_score": 0.0}, None), ({"auroc": 1.0}, None), ({"loss": 17.0}, None),
    ({"auroc": 5.0}, "the logged auroc is 5.0, outside [0, 1]"),
    ({"auroc": 0.5, "f1_score": -0.01}, "the logged f1_score is -0.01, outside [0, 1]"),
    ({"auroc": math.nan}, "the logged auroc is nan"), ({"auroc": math.inf}, "the logged auroc is inf"),
])
def test_ranked_metrics_are_scores(metrics: dict[str, float], problem: str | None) -> None:
    found = ranked_metric_problem(metrics)
    assert (found is None) if problem is None else (found is not None and found.startswith(problem))
