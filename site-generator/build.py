"""`build_site`: one build of the static leaderboard from MLflow, published atomically."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow.tracking import MlflowClient

from leadersboard.job_index import JobIndex

from . import publish
from .cache import EntryCache, load_cache, save_cache
from .exports import leaderboard_csv, leaderboard_json
from .ranking import boards, user_pages
from .render import environment, render_pages
from .source import fetch_entries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiteReport:
    out_dir: Path
    version_dir: Path  # where out_dir points now
    generated_at: datetime
    entries: int  # completed jobs on the site
    ranked: int  # ranking rows (best entry per user per benchmark)
    benchmarks: int
    users: int
    pages: int
    fetched: int  # completed runs read from MLflow by this build
    skipped: int  # of those, runs without a usable AUROC
    cold: bool  # True when every completed run was read (no usable cache)
    fetch_seconds: float
    render_seconds: float
    seconds: float


def build_site(tracking_uri: str, db_path: Path, out_dir: Path, cache_path: Path | None = None) -> SiteReport:
    """Build the site from the completed jobs in MLflow at `tracking_uri` and publish it at `out_dir`.

    Which runs are jobs, and whose, on which benchmark, comes from the instance database at `db_path`
    (the platform's job index); the scores from the runs. `out_dir` becomes a link to a complete,
    versioned directory (see `publish`). With `cache_path`, only runs that ended since the last build
    are read from MLflow (see `cache`).
    """
    started = time.perf_counter()
    with publish.site_lock(out_dir):
        cache = load_cache(cache_path, tracking_uri) if cache_path is not None else EntryCache(tracking_uri)
        since = cache.since_ms()
        fetched = fetch_entries(MlflowClient(tracking_uri), JobIndex(db_path), since)
        cache.merge(fetched.entries)
        fetch_seconds = time.perf_counter() - started

        all_boards = boards(cache.entries.values())
        users = user_pages(all_boards)
        generated_at = datetime.now(UTC)
        staged = publish.staging_dir(out_dir)
        try:
            pages = render_pages(environment(), all_boards, users, generated_at, staged)
            (staged / "leaderboard.json").write_text(leaderboard_json(all_boards, generated_at), encoding="utf-8")
            (staged / "leaderboard.csv").write_text(leaderboard_csv(all_boards), encoding="utf-8", newline="")
            version = publish.switch(out_dir, staged)
        except BaseException:
            publish.discard(staged)
            raise
        render_seconds = time.perf_counter() - started - fetch_seconds
        # Saved only after a successful publish: a failed build leaves the cache as the last good site saw it.
        if cache_path is not None and (fetched.entries or since is None):
            save_cache(cache_path, cache)
    report = SiteReport(
        out_dir=out_dir, version_dir=version, generated_at=generated_at, entries=len(cache.entries),
        ranked=sum(len(board.ranking) for board in all_boards), benchmarks=len(all_boards), users=len(users),
        pages=pages, fetched=fetched.runs, skipped=fetched.skipped, cold=since is None,
        fetch_seconds=fetch_seconds, render_seconds=render_seconds, seconds=time.perf_counter() - started,
    )
    log.info("site built in %.2f s (%s, %d read from MLflow, %d entries, %d pages) -> %s", report.seconds,
             "cold" if report.cold else "warm", report.fetched, report.entries, report.pages, out_dir)
    return report
