"""The ranking, on entries made here: best entry per user, AUROC then F1 then the earlier submission;
and the machine-readable exports of it."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from mlflow.entities import Metric, Run, RunData, RunInfo, RunTag

from leadersboard import contract as c
from leadersboard.job_index import JobRecord
from leadersboard.site_generator.entries import Entry, entry_from_run
from leadersboard.site_generator.exports import leaderboard_csv, leaderboard_json
from leadersboard.site_generator.ranking import boards, rank, user_pages
from leadersboard.site_generator.slugs import page_slug

_counter = iter(range(1, 10_000))


def entry(user: str, auroc: float, f1: float | None = None, benchmark: str = "visa/pcb1",
          submitted: float | None = None, **more: Any) -> Entry:
    n = next(_counter)
    values: dict[str, Any] = {
        "run_id": f"run{n:04d}", "job_id": f"job{n}", "benchmark": benchmark, "user": user, "folder": f"f{n}",
        "submission_id": f"s{n}", "commit": "c" * 40, "method": "", "submitted_at": submitted if submitted else n,
        "end_time_ms": 1_000_000 + n, "auroc": auroc, "f1_score": f1, "runtime_seconds": 1.0}
    values.update(more)
    return Entry(**values)


def test_best_entry_per_user_by_auroc() -> None:
    entries = [entry("alice", 0.8), entry("bob", 0.9), entry("alice", 0.95), entry("carol", 0.85)]
    ranked = rank(entries)
    assert [(r.rank, r.entry.user, r.entry.auroc, r.attempts) for r in ranked] == [
        (1, "alice", 0.95, 2), (2, "bob", 0.9, 1), (3, "carol", 0.85, 1)]


def test_ties_go_to_higher_f1_then_the_earlier_submission() -> None:
    late_high_f1 = entry("bob", 0.9, 0.8, submitted=200)
    early = entry("carol", 0.9, 0.7, submitted=100)
    later = entry("dave", 0.9, 0.7, submitted=150)
    no_f1 = entry("erin", 0.9, None, submitted=50)
    assert [r.entry.user for r in rank([no_f1, later, early, late_high_f1])] == ["bob", "carol", "dave", "erin"]


def test_the_order_is_total_and_stable() -> None:
    twins = [entry(f"user{i}", 0.5, 0.5, submitted=10, end_time_ms=5) for i in range(3)]
    assert [r.entry.run_id for r in rank(twins)] == sorted(e.run_id for e in twins)
    assert rank(twins) == rank(list(reversed(twins)))


def test_boards_per_benchmark_and_user_pages() -> None:
    entries = [entry("alice", 0.9, benchmark="visa/pcb1"), entry("bob", 0.7, benchmark="visa/pcb1"),
               entry("bob", 0.6, benchmark="mvtec/bottle")]
    all_boards = boards(entries)
    assert [(b.benchmark, b.slug, len(b.ranking)) for b in all_boards] == [
        ("mvtec/bottle", "mvtec.bottle", 1), ("visa/pcb1", "visa.pcb1", 2)]
    pages = {page.user: page for page in user_pages(all_boards)}
    assert pages["bob"].ranks == {"mvtec/bottle": 1, "visa/pcb1": 2}
    assert [e.benchmark for e in pages["bob"].entries] == ["mvtec/bottle", "visa/pcb1"]  # newest first


def run(metrics: dict[str, float], tags: dict[str, str], end_time: int | None = 2000) -> Run:
    info = RunInfo(run_id="r1", experiment_id="1", user_id="", status="FINISHED", start_time=1000,
                   end_time=end_time, lifecycle_stage="active")
    data = RunData(metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                   tags=[RunTag(k, v) for k, v in tags.items()])
    return Run(info, data)


RECORD = JobRecord(job_id="j1", run_id="r1", user="alice", benchmark="visa/pcb1", submission_id="s1",
                   folder="padim", commit="abc", entrypoint="main.py", config_file="config.yaml",
                   resource_class=None, created_at=1700000000.5, method="PaDiM")


def test_an_entry_from_a_job_run_and_its_record() -> None:
    tags = {c.TAG_USER: "mallory", c.TAG_BENCHMARK: "other/x", c.TAG_FOLDER: "forged"}  # the record wins
    found = entry_from_run(run({c.METRIC_AUROC: 0.9, c.METRIC_F1: 0.8, c.METRIC_RUNTIME: 12.5}, tags), RECORD)
    assert found is not None
    assert (found.user, found.benchmark, found.folder, found.method, found.auroc, found.f1_score,
            found.runtime_seconds) == ("alice", "visa/pcb1", "padim", "PaDiM", 0.9, 0.8, 12.5)
    assert found.submitted_at == 1700000000.5 and found.finished_at == 2.0 and found.job_id == "j1"


@pytest.mark.parametrize(("metrics", "end_time"), [
    ({}, 2000),  # no AUROC
    ({c.METRIC_AUROC: math.nan}, 2000),  # cannot be ranked
    ({c.METRIC_AUROC: math.inf}, 2000),
    ({c.METRIC_AUROC: 0.9}, None),  # not ended
])
def test_runs_that_make_no_entry(metrics: dict[str, float], end_time: int | None) -> None:
    assert entry_from_run(run(metrics, {}, end_time), RECORD) is None


def test_a_missing_f1_is_not_a_number() -> None:
    found = entry_from_run(run({c.METRIC_AUROC: 0.9, c.METRIC_F1: math.nan}, {}), RECORD)
    assert found is not None and found.f1_score is None and found.benchmark == "visa/pcb1"


def test_exports_neutralise_formulas_and_escape_markup() -> None:
    hostile = entry("=cmd|'/c calc'!A1", 0.9, folder="<script>alert(1)</script>", method="+1")
    all_boards = boards([hostile])
    rows = list(csv.DictReader(io.StringIO(leaderboard_csv(all_boards))))
    assert rows[0]["user"] == "'=cmd|'/c calc'!A1" and rows[0]["method"] == "'+1" and rows[0]["f1_score"] == ""
    text = leaderboard_json(all_boards, datetime(2026, 1, 1, tzinfo=UTC))
    assert "<" not in text and ">" not in text
    document = json.loads(text)
    assert document["benchmarks"][0]["ranking"][0]["submission"] == "<script>alert(1)</script>"
    assert document["generated_at"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(("name", "slug"), [("visa/pcb1", "visa.pcb1"), ("alice", "alice")])
def test_plain_names_keep_a_readable_page(name: str, slug: str) -> None:
    assert page_slug(name) == slug


def test_other_names_get_distinct_safe_pages() -> None:
    names = ["../../etc", "a.b", "a/b/../c", "Alice", "alice ", "<x>", ""]
    slugs = [page_slug(name) for name in names]
    assert len(set(slugs)) == len(names)
    assert all("/" not in slug and ".." not in slug and slug for slug in slugs)
