"""Rendering the pages with jinja2 templates from `templates/site/` (autoescape on: every name is escaped)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2

from leadersboard.templates import TEMPLATES_DIR

from .chart import score_chart
from .ranking import Board, UserPage

SHORT_COMMIT = 8


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(score=score, runtime=runtime, date=date, iso=iso_time, short_commit=short_commit)
    return env


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def runtime(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def date(unix: float | None) -> str:
    return "—" if unix is None else datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M")


def iso_time(unix: float | None) -> str:
    return "" if unix is None else datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_commit(sha: str) -> str:
    return sha[:SHORT_COMMIT]


def render_pages(env: jinja2.Environment, boards: list[Board], users: list[UserPage], generated_at: datetime,
                 directory: Path) -> int:
    """Write index.html, benchmark/<slug>.html and user/<slug>.html into `directory`; returns the page count."""
    common = {"generated": generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"), "boards": boards}
    user_slugs = {page.user: page.slug for page in users}
    board_slugs = {board.benchmark: board.slug for board in boards}
    _write(directory / "index.html", env.get_template("site/index.html").render(
        common, root="", user_slugs=user_slugs, users=users))
    (directory / "benchmark").mkdir()
    page = env.get_template("site/benchmark.html")
    for board in boards:
        _write(directory / "benchmark" / f"{board.slug}.html", page.render(
            common, root="../", board=board, chart=score_chart(board.entries), user_slugs=user_slugs))
    (directory / "user").mkdir()
    page = env.get_template("site/user.html")
    for user in users:
        _write(directory / "user" / f"{user.slug}.html", page.render(
            common, root="../", user=user, board_slugs=board_slugs, user_slugs=user_slugs))
    return 1 + len(boards) + len(users)


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
