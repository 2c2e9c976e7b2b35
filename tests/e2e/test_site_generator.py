"""The static leaderboard, built from a real MLflow tracking server filled the way the worker fills it,
and checked in a real headless Chromium.

Every test uses its own benchmark names (one experiment each), so tests share one server without
seeing each other's rankings. Job runs end at fixed times in the past, an hour apart, unless a test
says otherwise: that keeps the incremental-cache test's arithmetic exact.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from leadersboard import contract as names
from leadersboard import db
from leadersboard.job_index import JobIndex
from leadersboard.site_generator import SiteBuilder, SiteReport, build_site
from leadersboard.site_generator import build as build_module
from leadersboard.site_generator.cache import OVERLAP_MS
from leadersboard.site_generator.publish import PublishError

from support.browser import dump_dom, screenshot
from support.instances import mlflow_template, run_cli
from support.shared import SessionMlflow

BASE = 1_767_225_600  # 2026-01-01T00:00:00Z
_clock = itertools.count(1)

HOSTILE_FOLDER = "<script>document.title='pwned'</script>"
HOSTILE_METHOD = "<img src=x onerror=\"document.title='pwned'\">"
HOSTILE_USER = "<b>mallory</b>\"'&"


# ------------------------------------------------------------------------------------------ fixtures


@dataclass
class Tracked:
    """A tracking server and the instance database whose job index says which of its runs are jobs."""

    uri: str
    db_path: Path

    @property
    def mlflow(self) -> MlflowClient:
        return MlflowClient(self.uri)


def tracked(uri: str, db_path: Path) -> Tracked:
    db.create_schema(db_path)
    return Tracked(uri, db_path)


@pytest.fixture
def client(mlflow_server: SessionMlflow, tmp_path_factory: pytest.TempPathFactory) -> Tracked:
    return tracked(mlflow_server.url, tmp_path_factory.mktemp("index") / "leadersboard.db")


def build(where: Tracked, out: Path, cache: Path | None = None) -> SiteReport:
    return build_site(where.uri, where.db_path, out, cache)


def new_benchmark() -> str:
    return f"t{secrets.token_hex(4)}/pcb1"


def finish_job(where: Tracked, benchmark: str, user: str, folder: str, auroc: float | None,
               f1: float | None = 0.5, *, status: str = "completed", submitted_at: float | None = None,
               end_time_ms: int | None = None, method: str | None = None, commit: str | None = None,
               runtime: float = 12.5, indexed: bool = True, scoring: str = "self_reported") -> str:
    """A job as the platform records it: its run (experiment named like the benchmark, tags, metrics,
    end state) and, unless `indexed` is false, its submission and job rows in the instance database."""
    client = where.mlflow
    experiment = client.get_experiment_by_name(benchmark)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(benchmark)
    if submitted_at is None:
        submitted_at = BASE + next(_clock) * 3600
    tags = {
        names.TAG_USER: user, names.TAG_FOLDER: folder, names.TAG_SUBMISSION_ID: secrets.token_hex(8),
        names.TAG_COMMIT: commit or secrets.token_hex(20), names.TAG_BENCHMARK: benchmark,
        names.TAG_SUBMITTED_AT: str(submitted_at), names.TAG_STATUS: status,
    }
    if method is not None:
        tags[names.TAG_METHOD] = method
    run = client.create_run(experiment_id, start_time=int(submitted_at * 1000), tags=tags)
    run_id: str = run.info.run_id
    client.set_tag(run_id, names.TAG_JOB_ID, run_id)
    now_ms = int((submitted_at + 600) * 1000) if end_time_ms is None else end_time_ms
    metrics = [Metric(names.METRIC_RUNTIME, runtime, now_ms, 0)]
    if auroc is not None:
        metrics.append(Metric(names.METRIC_AUROC, auroc, now_ms, 0))
    if f1 is not None:
        metrics.append(Metric(names.METRIC_F1, f1, now_ms, 0))
    client.log_batch(run_id, metrics=metrics)
    end_state = {"completed": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}.get(status)
    if end_state:
        client.set_terminated(run_id, end_state, end_time=now_ms)
    elif status == "pending":
        client.update_run(run_id, status="SCHEDULED")
    if indexed:
        record(where.db_path, run_id, tags, method, scoring)
    return run_id


def record(db_path: Path, run_id: str, tags: dict[str, str], method: str | None, scoring: str) -> None:
    """The rows the service writes when it admits a submission and makes its job."""
    sub_id = tags[names.TAG_SUBMISSION_ID]
    submitted = float(tags[names.TAG_SUBMITTED_AT])
    with db.connect(db_path) as conn:
        conn.execute("INSERT INTO submissions (id, user, commit_id, folder, ref, tree_id, entrypoint, config_file, "
                     "benchmark, metadata, run, created_at, job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                     (sub_id, tags[names.TAG_USER], tags[names.TAG_COMMIT], tags[names.TAG_FOLDER], "refs/heads/x",
                      "0" * 40, "main.py", "config.yaml", tags[names.TAG_BENCHMARK],
                      json.dumps({"method": method} if method is not None else {}), submitted, run_id))
    JobIndex(db_path).add(run_id, run_id, sub_id, tags[names.TAG_USER], tags[names.TAG_BENCHMARK], None, submitted,
                          scoring)


# ------------------------------------------------------------------------------------------ reading a site


@dataclass
class Table:
    benchmark: str
    rows: list[dict[str, str]] = field(default_factory=list)  # data-rank, data-user, and the cells' text


class RankingTables(HTMLParser):
    """The ranking tables of a page: per benchmark, its rows in page order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, Table] = {}
        self._table: Table | None = None
        self._row: dict[str, str] | None = None
        self._cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "table" and "ranking" in attributes.get("class", "").split():
            self._table = self.tables.setdefault(attributes["data-benchmark"], Table(attributes["data-benchmark"]))
        elif tag == "tr" and self._table is not None and "data-rank" in attributes:
            self._row = {"rank": attributes["data-rank"], "user": attributes["data-user"]}
            self._cells = []
        elif tag == "td" and self._row is not None:
            self._cells.append("")
        elif tag == "code" and self._row is not None:
            self._row["commit_title"] = attributes.get("title", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._table is not None and self._row is not None:
            keys = ["rank_cell", "user_cell", "submission", "auroc", "f1", "runtime", "commit", "date"]
            self._row.update(zip(keys, (cell.strip() for cell in self._cells), strict=True))
            self._table.rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._cells:
            self._cells[-1] += data


def ranking_tables(html: str) -> dict[str, Table]:
    parser = RankingTables()
    parser.feed(html)
    return parser.tables


def board(site: Path, benchmark: str) -> dict[str, Any]:
    document = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    return next(item for item in document["benchmarks"] if item["benchmark"] == benchmark)


def ranked_users(site: Path, benchmark: str) -> list[str]:
    return [row["user"] for row in board(site, benchmark)["ranking"]]


def comparable(site: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    document.pop("generated_at")
    return document


# ------------------------------------------------------------------------------------------ ranking


def test_best_entry_per_user_ranked_by_auroc(client: Tracked, mlflow_server: SessionMlflow,
                                             tmp_path: Path) -> None:
    benchmark = new_benchmark()
    finish_job(client, benchmark, "alice", "padim-v1", 0.81, 0.70, method="Padim")
    bob = finish_job(client, benchmark, "bob", "patchcore", 0.86, 0.75)
    better = finish_job(client, benchmark, "alice", "padim-v2", 0.93, 0.72, method="Padim")

    report = build(client, tmp_path / "site")
    site = tmp_path / "site"

    rows = board(site, benchmark)["ranking"]
    assert [(r["rank"], r["user"], r["submission"], r["run_id"]) for r in rows] == [
        (1, "alice", "padim-v2", better), (2, "bob", "patchcore", bob)]
    assert rows[0]["attempts"] == 2 and rows[0]["method"] == "Padim" and rows[0]["f1_score"] == 0.72
    assert board(site, benchmark)["completed_jobs"] == 3
    assert report.cold and report.entries >= 3

    # The same ranking in index.html, its benchmark page, and the CSV.
    for page in (site / "index.html", site / board(site, benchmark)["page"]):
        table = ranking_tables(page.read_text(encoding="utf-8"))[benchmark]
        assert [(row["rank"], row["user"], row["submission"]) for row in table.rows] == [
            ("1", "alice", "padim-v2Padim"), ("2", "bob", "patchcore")]
        assert table.rows[0]["auroc"] == "0.9300" and table.rows[0]["f1"] == "0.7200"
        assert table.rows[0]["runtime"] == "12.5 s"
        assert rows[0]["commit"].startswith(table.rows[0]["commit"]) and table.rows[0]["commit_title"] == rows[0][
            "commit"]
    csv_rows = [row for row in csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8")))
                if row["benchmark"] == benchmark]
    assert [(row["rank"], row["user"], row["submission"]) for row in csv_rows] == [
        ("1", "alice", "padim-v2"), ("2", "bob", "patchcore")]

    # Per-user pages list every completed job of theirs.
    alice = (site / "user" / "alice.html").read_text(encoding="utf-8")
    assert "padim-v1" in alice and "padim-v2" in alice and "patchcore" not in alice
    assert '<html lang="en">' in alice and '<meta charset="utf-8">' in alice


def test_ties_go_to_higher_f1_then_earlier_submission(client: Tracked, mlflow_server: SessionMlflow,
                                                     tmp_path: Path) -> None:
    benchmark = new_benchmark()
    finish_job(client, benchmark, "carol", "a", 0.9, 0.70, submitted_at=BASE + 100)
    finish_job(client, benchmark, "dave", "b", 0.9, 0.80, submitted_at=BASE + 300)
    finish_job(client, benchmark, "erin", "c", 0.9, 0.80, submitted_at=BASE + 200)
    finish_job(client, benchmark, "frank", "d", 0.9, None, submitted_at=BASE + 50)  # no F1 loses to any F1
    finish_job(client, benchmark, "grace", "e", 0.95, 0.10, submitted_at=BASE + 400)  # AUROC comes first
    # A user's own tie: the earlier of two equal submissions is the one shown.
    finish_job(client, benchmark, "heidi", "late", 0.5, 0.5, submitted_at=BASE + 900)
    finish_job(client, benchmark, "heidi", "early", 0.5, 0.5, submitted_at=BASE + 800)

    build(client, tmp_path / "site")

    ranking = board(tmp_path / "site", benchmark)["ranking"]
    assert [row["user"] for row in ranking] == ["grace", "erin", "dave", "carol", "frank", "heidi"]
    assert [row["rank"] for row in ranking] == [1, 2, 3, 4, 5, 6]
    assert ranking[-1]["submission"] == "early"
    assert ranking[4]["f1_score"] is None


def test_only_completed_jobs_are_ranked(client: Tracked, mlflow_server: SessionMlflow, tmp_path: Path) -> None:
    benchmark = new_benchmark()
    finish_job(client, benchmark, "ok", "good", 0.7)
    finish_job(client, benchmark, "failer", "crash", 0.99, status="failed")
    finish_job(client, benchmark, "runner", "slow", 0.99, status="running")
    finish_job(client, benchmark, "pender", "queued", 0.99, status="pending")
    finish_job(client, benchmark, "canceller", "stop", 0.99, status="cancelled")
    # MLflow says FINISHED but the platform has not marked it completed (yet): not ranked.
    half = finish_job(client, benchmark, "half", "done", 0.99, status="completed")
    client.mlflow.set_tag(half, names.TAG_STATUS, "running")
    finish_job(client, benchmark, "nometric", "silent", None)  # completed without auroc: nothing to rank
    # A submission's own run nested under its job is not an entry of its own.
    child = finish_job(client, benchmark, "nested", "inner", 0.99, indexed=False)
    client.mlflow.set_tag(child, "mlflow.parentRunId", half)
    # A run that is no job of the platform's (made in MLflow directly), with job-like tags: not ranked.
    finish_job(client, benchmark, "forger", "made-up", 1.0, indexed=False)

    report = build(client, tmp_path / "site")

    assert ranked_users(tmp_path / "site", benchmark) == ["ok"]
    assert board(tmp_path / "site", benchmark)["completed_jobs"] == 1
    assert (report.fetched, report.skipped) == (2, 1)  # "ok" and "nometric": only jobs of the index count
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    for word in ("failer", "runner", "pender", "canceller", "half", "nometric", "nested", "forger"):
        assert word not in index


def test_the_platform_record_not_the_run_tags_says_whose_and_where(client: Tracked, tmp_path: Path) -> None:
    benchmark, elsewhere = new_benchmark(), new_benchmark()
    run = finish_job(client, benchmark, "alice", "honest", 0.7)
    # Tags rewritten in MLflow after the fact (as anyone could before MLflow became read-only).
    client.mlflow.set_tag(run, names.TAG_USER, "mallory")
    client.mlflow.set_tag(run, names.TAG_BENCHMARK, elsewhere)
    build(client, tmp_path / "site")
    assert ranked_users(tmp_path / "site", benchmark) == ["alice"]
    document = json.loads((tmp_path / "site" / "leaderboard.json").read_text(encoding="utf-8"))
    assert elsewhere not in [item["benchmark"] for item in document["benchmarks"]]
    assert "mallory" not in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")


def test_the_site_says_how_each_row_was_scored(client: Tracked, tmp_path: Path) -> None:
    verified, mixed = new_benchmark(), new_benchmark()
    finish_job(client, verified, "vera", "v", 0.9, scoring="verified")
    finish_job(client, mixed, "vera", "v", 0.9, scoring="verified")
    finish_job(client, mixed, "sam", "s", 0.8)
    build(client, tmp_path / "site")
    assert board(tmp_path / "site", verified)["scoring"] == "verified"
    mixed_board = board(tmp_path / "site", mixed)
    assert mixed_board["scoring"] == "mixed"
    assert [(row["user"], row["scoring"]) for row in mixed_board["ranking"]] == [
        ("vera", "verified"), ("sam", "self_reported")]
    page = (tmp_path / "site" / mixed_board["page"]).read_text(encoding="utf-8")
    assert "Mixed: rows marked" in page and page.count('class="badge verified" title="Verified:') == 1
    page = (tmp_path / "site" / board(tmp_path / "site", verified)["page"]).read_text(encoding="utf-8")
    assert "Verified: the platform scores every job" in page
    rows = list(csv.DictReader(io.StringIO((tmp_path / "site" / "leaderboard.csv").read_text(encoding="utf-8"))))
    assert {row["scoring"] for row in rows if row["benchmark"] == mixed} == {"verified", "self_reported"}


# ------------------------------------------------------------------------------------------ escaping


def test_user_controlled_text_is_escaped_in_html_json_and_csv(client: Tracked, mlflow_server: SessionMlflow,
                                                            tmp_path: Path) -> None:
    benchmark = new_benchmark()
    hostile_commit = 'abc"><script>x</script>'
    finish_job(client, benchmark, HOSTILE_USER, HOSTILE_FOLDER, 0.9, method=HOSTILE_METHOD, commit=hostile_commit)
    finish_job(client, benchmark, "../../escape", '=HYPERLINK("http://x","y"),\n"quoted"', 0.8)

    build(client, tmp_path / "site")
    site = tmp_path / "site"

    pages = [path for path in site.rglob("*.html")]
    texts = {path: path.read_text(encoding="utf-8") for path in pages}
    for path, text in texts.items():
        assert "<script" not in text, path
        assert "<img" not in text and "<b>" not in text, path
    index = texts[site / "index.html"]
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in index
    assert "&lt;img src=x onerror=&#34;document.title=&#39;pwned&#39;&#34;&gt;" in index
    assert "&lt;b&gt;mallory&lt;/b&gt;&#34;&#39;&amp;" in index
    assert 'title="abc&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in index
    # The parsed page gives back exactly what the user wrote.
    table = ranking_tables(index)[benchmark]
    assert table.rows[0]["user"] == HOSTILE_USER
    assert table.rows[0]["submission"] == HOSTILE_FOLDER + HOSTILE_METHOD
    assert table.rows[0]["commit_title"] == hostile_commit

    # Page files stay inside the site whatever the user name says.
    user_pages = sorted(path.relative_to(site).as_posix() for path in (site / "user").iterdir())
    assert all("/" not in name.removeprefix("user/") for name in user_pages)
    assert not (site.parent / "escape.html").exists() and not (tmp_path.parent / "escape.html").exists()
    assert all(path.resolve().is_relative_to(site.resolve()) for path in site.rglob("*"))

    raw_json = (site / "leaderboard.json").read_text(encoding="utf-8")
    assert "<" not in raw_json and ">" not in raw_json
    rows = board(site, benchmark)["ranking"]
    assert (rows[0]["user"], rows[0]["submission"], rows[0]["method"], rows[0]["commit"]) == (
        HOSTILE_USER, HOSTILE_FOLDER, HOSTILE_METHOD, hostile_commit)

    csv_rows = [row for row in csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8")))
                if row["benchmark"] == benchmark]
    assert csv_rows[0]["submission"] == HOSTILE_FOLDER and csv_rows[0]["user"] == HOSTILE_USER
    # A cell that a spreadsheet would run as a formula is kept as text.
    assert csv_rows[1]["submission"] == '\'=HYPERLINK("http://x","y"),\n"quoted"'


def test_chromium_renders_the_ranking_and_runs_no_injected_script(client: Tracked, mlflow_server: SessionMlflow,
                                                                  tmp_path: Path) -> None:
    benchmark = new_benchmark()
    finish_job(client, benchmark, "ivan", "first-try", 0.88, 0.6)
    finish_job(client, benchmark, HOSTILE_USER, HOSTILE_FOLDER, 0.95, 0.7, method=HOSTILE_METHOD)
    finish_job(client, benchmark, "judy", "ジュディ-padim", 0.91, 0.65)
    build(client, tmp_path / "site")
    index = tmp_path / "site" / "index.html"

    dom = dump_dom(index)

    assert "<title>Leaderboard / リーダーボード · LeadersBoard</title>" in dom
    assert "pwned" not in dom.split("</title>", 1)[0]
    assert "<script" not in dom and "<img" not in dom
    rows = ranking_tables(dom)[benchmark].rows
    assert [(row["rank"], row["user"]) for row in rows] == [("1", HOSTILE_USER), ("2", "judy"), ("3", "ivan")]
    assert rows[0]["submission"] == HOSTILE_FOLDER + HOSTILE_METHOD
    assert rows[1]["submission"] == "ジュディ-padim"

    benchmark_page = tmp_path / "site" / board(tmp_path / "site", benchmark)["page"]
    chart_dom = dump_dom(benchmark_page)
    assert chart_dom.count("<circle") == 3 and "<script" not in chart_dom
    png = screenshot(benchmark_page, tmp_path / "benchmark.png")
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5_000


# ------------------------------------------------------------------------------------------ publishing


def test_publish_switches_atomically_and_removes_old_versions(client: Tracked, mlflow_server: SessionMlflow,
                                                              tmp_path: Path) -> None:
    benchmark = new_benchmark()
    finish_job(client, benchmark, "kim", "one", 0.6)
    out = tmp_path / "public" / "site"
    first = build(client, out)
    assert out.is_symlink() and out.resolve() == first.version_dir.resolve()

    # Readers of `out` during rebuilds always find complete files.
    problems: list[str] = []
    reads = 0
    stop = threading.Event()

    def read_constantly() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                html = (out / "index.html").read_text(encoding="utf-8")
                document = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problems.append(repr(exc))
                continue
            if not html.rstrip().endswith("</html>") or "benchmarks" not in document:
                problems.append("incomplete read")
            reads += 1

    reader = threading.Thread(target=read_constantly)
    reader.start()
    try:
        versions = []
        for n in range(4):
            finish_job(client, benchmark, f"user{n}", "more", 0.7 + n / 100)
            versions.append(build(client, out).version_dir)
    finally:
        stop.set()
        reader.join()
    assert problems == [] and reads > 0

    # The newest version is live, the one before it kept for readers in flight, older ones gone.
    assert out.resolve() == versions[-1].resolve()
    siblings = sorted(path.name for path in out.parent.iterdir() if path.name != out.name)
    assert siblings == sorted([".site.lock", versions[-2].name, versions[-1].name])
    assert len(ranked_users(out, benchmark)) == 5


def test_a_failed_build_leaves_the_published_site(client: Tracked, mlflow_server: SessionMlflow,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    benchmark = new_benchmark()
    finish_job(client, benchmark, "liam", "one", 0.6)
    out = tmp_path / "site"
    good = build(client, out)
    finish_job(client, benchmark, "mia", "two", 0.9)

    def broken(*args: Any, **kwargs: Any) -> int:
        (args[-1] / "index.html").write_text("half a page")
        raise RuntimeError("disk full")

    monkeypatch.setattr(build_module, "render_pages", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build(client, out)

    assert out.resolve() == good.version_dir.resolve()
    assert ranked_users(out, benchmark) == ["liam"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([".site.lock", good.version_dir.name, "site"])


def test_an_existing_directory_is_not_overwritten(client: Tracked, tmp_path: Path) -> None:
    out = tmp_path / "docs"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PublishError, match="is not a published site"):
        build(client, out)
    assert (out / "keep.txt").read_text() == "mine" and not out.is_symlink()
    # An empty directory is taken over.
    empty = tmp_path / "empty"
    empty.mkdir()
    build(client, empty)
    assert empty.is_symlink() and (empty / "index.html").exists()


# ------------------------------------------------------------------------------------------ incremental cache


# A store of its own: real jobs of other tests end minutes before in the session's MLflow server, within
# the overlap window, and a warm build would read them too. (MLflow's SQLite store warns about SQLAlchemy.)
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")
def test_a_warm_build_reads_only_new_runs_and_equals_a_cold_build(tmp_path: Path) -> None:
    shutil.copyfile(mlflow_template(), tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracked(uri, tmp_path / "index.db")
    benchmark = new_benchmark()
    now_ms = int(time.time() * 1000)
    hour = 3_600_000
    finish_job(client, benchmark, "nina", "a", 0.70, end_time_ms=now_ms - 3 * hour)
    finish_job(client, benchmark, "omar", "b", 0.80, end_time_ms=now_ms - 2 * hour)
    finish_job(client, benchmark, "nina", "c", 0.75, end_time_ms=now_ms - hour)
    cache = tmp_path / "cache.json"

    first = build(client, tmp_path / "warm", cache)
    assert first.cold and cache.exists()

    finish_job(client, benchmark, "omar", "d", 0.95, end_time_ms=now_ms)
    finish_job(client, benchmark, "pia", "e", 0.85, end_time_ms=now_ms + 1)
    # A late commit: it ended before the newest cached run, but within the overlap window.
    finish_job(client, benchmark, "quinn", "f", 0.90, end_time_ms=now_ms - OVERLAP_MS // 2)

    warm = build(client, tmp_path / "warm", cache)
    # The three new runs, plus the newest cached one (ended within the overlap window): not the whole store.
    assert not warm.cold and warm.fetched == 4
    cold = build(client, tmp_path / "cold")
    assert cold.cold and cold.fetched - cold.skipped == cold.entries == warm.entries

    assert comparable(tmp_path / "warm") == comparable(tmp_path / "cold")
    assert ranked_users(tmp_path / "warm", benchmark) == ["omar", "quinn", "pia", "nina"]
    for page in ("index.html", f"benchmark/{board(tmp_path / 'cold', benchmark)['page'].split('/')[1]}"):
        warm_html = (tmp_path / "warm" / page).read_text(encoding="utf-8")
        cold_html = (tmp_path / "cold" / page).read_text(encoding="utf-8")
        assert warm_html.split("<footer>")[0] == cold_html.split("<footer>")[0]

    # Nothing new: nothing but the overlap is read.
    again = build(client, tmp_path / "warm", cache)
    assert not again.cold and again.fetched == 3


def test_an_unusable_cache_means_a_cold_build(client: Tracked, mlflow_server: SessionMlflow,
                                             tmp_path: Path) -> None:
    finish_job(client, new_benchmark(), "rita", "a", 0.7)
    cache = tmp_path / "cache.json"
    cache.write_text("{not json")
    assert build(client, tmp_path / "site", cache).cold
    assert not build(client, tmp_path / "site", cache).cold
    # Same server under another address: the cache is not trusted for it.
    other_uri = mlflow_server.url.replace("127.0.0.1", "localhost")
    assert build_site(other_uri, client.db_path, tmp_path / "site", cache).cold


# ------------------------------------------------------------------------------------------ coalesced rebuilds


class SlowBuild:
    """Stands in for build_site: blocks until released, counts calls, can fail on demand."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail_next = False

    def __call__(self, tracking_uri: str, db_path: Path, out_dir: Path, cache_path: Path | None) -> Any:
        self.calls += 1
        self.started.set()
        assert self.release.wait(10), "never released"
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("MLflow is down")
        return None


def test_requests_during_a_build_cause_exactly_one_more_build(tmp_path: Path) -> None:
    build = SlowBuild()

    async def scenario() -> None:
        async with SiteBuilder("http://unused", tmp_path / "index.db", tmp_path / "site", build=build) as builder:
            builder.request_rebuild()
            assert await asyncio.to_thread(build.started.wait, 5)
            for _ in range(10):
                builder.request_rebuild()
            # ... from another thread too, as a sync caller would.
            await asyncio.to_thread(builder.request_rebuild)
            build.release.set()
            await builder.wait_idle()
            assert (build.calls, builder.builds) == (2, 2)

            # A burst before the builder gets to run builds once.
            for _ in range(20):
                builder.request_rebuild()
            await builder.wait_idle()
            assert build.calls == 3

    asyncio.run(scenario())


def test_a_failed_build_is_logged_and_later_requests_still_build(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    build = SlowBuild()
    build.release.set()
    build.fail_next = True

    async def scenario() -> None:
        builder = SiteBuilder("http://unused", tmp_path / "index.db", tmp_path / "site", build=build)
        with pytest.raises(RuntimeError, match="start"):
            builder.request_rebuild()
        await builder.start()
        builder.request_rebuild()
        await builder.wait_idle()
        first_error: BaseException | None = builder.last_error
        assert builder.failures == 1 and isinstance(first_error, RuntimeError)
        builder.request_rebuild()
        await builder.stop()  # drains: the asked-for build runs before stopping
        assert (build.calls, builder.failures, builder.last_error) == (2, 1, None)
        builder.request_rebuild()  # a job that ends during shutdown: ignored, not an error
        assert build.calls == 2

    asyncio.run(scenario())
    assert [record.message for record in caplog.records if record.levelname == "ERROR"] == ["site build failed"]


def test_site_builder_builds_the_real_site(client: Tracked, mlflow_server: SessionMlflow, tmp_path: Path) -> None:
    benchmark = new_benchmark()
    # Real finish times, as the worker's: a warm build reads what ended since the newest cached run.
    finish_job(client, benchmark, "sam", "x", 0.77, end_time_ms=int(time.time() * 1000))

    async def scenario() -> None:
        cache = tmp_path / "cache.json"
        async with SiteBuilder(mlflow_server.url, client.db_path, tmp_path / "site", cache) as builder:
            builder.request_rebuild()
            await builder.wait_idle()
            assert builder.last_report is not None and builder.last_report.cold
            finish_job(client, benchmark, "tom", "y", 0.99, end_time_ms=int(time.time() * 1000))
            builder.request_rebuild()
            await builder.wait_idle()
            assert builder.last_report is not None and not builder.last_report.cold

    asyncio.run(scenario())
    assert ranked_users(tmp_path / "site", benchmark) == ["tom", "sam"]
    assert os.path.islink(tmp_path / "site")


def test_site_build_command(mlflow_server: SessionMlflow, tmp_path: Path) -> None:
    """`leadersboard site build --out DIR` builds the instance's jobs from the MLflow that
    MLFLOW_TRACKING_URI names."""
    home = tmp_path / "home"
    run_cli("init", "--home", str(home))
    benchmark = new_benchmark()
    finish_job(Tracked(mlflow_server.url, home / "leadersboard.db"), benchmark, "carol", "cli-built", 0.93)
    out = tmp_path / "public"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url, "LEADERSBOARD_HOME": str(home)}
    result = subprocess.run([str(Path(sys.executable).parent / "leadersboard"), "site", "build", "--out", str(out)],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert f"built {out}" in result.stdout
    board = json.loads((out / "leaderboard.json").read_text())
    rows = [r for b in board["benchmarks"] if b["benchmark"] == benchmark for r in b["ranking"]]
    assert [(r["user"], r["submission"]) for r in rows] == [("carol", "cli-built")]
    assert (out / "index.html").is_file()


def test_site_build_command_needs_mlflow(tmp_path: Path) -> None:
    run_cli("init", "--home", str(tmp_path / "home"))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["LEADERSBOARD_HOME"] = str(tmp_path / "home")
    result = subprocess.run([str(Path(sys.executable).parent / "leadersboard"), "site", "build"],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "MLFLOW_TRACKING_URI" in result.stderr
