"""Ranking: per benchmark, each user's best entry; higher AUROC first, then higher F1, then the
earlier submission (then the earlier finish and the run id, so the order is total and stable)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from .entries import Entry
from .slugs import page_slug


@dataclass(frozen=True, slots=True)
class Ranked:
    rank: int
    entry: Entry
    attempts: int  # the user's completed jobs on this benchmark


@dataclass(frozen=True)
class Board:
    """One benchmark: its ranking and every completed entry, oldest first."""

    benchmark: str
    slug: str
    ranking: list[Ranked]
    entries: list[Entry]

    @property
    def scoring(self) -> str:
        """How its rows were scored: verified, self_reported, or mixed (the data set changed its scoring)."""
        kinds = {entry.scoring for entry in self.entries}
        return kinds.pop() if len(kinds) == 1 else "mixed"


@dataclass(frozen=True)
class UserPage:
    user: str
    slug: str
    entries: list[Entry]  # newest first
    ranks: dict[str, int]  # benchmark -> the user's rank there


def sort_key(entry: Entry) -> tuple[float, float, float, int, str]:
    """Smaller is better. A missing F1 loses to any F1; a missing submission time to any time."""
    f1 = entry.f1_score if entry.f1_score is not None else -math.inf
    submitted = entry.submitted_at if entry.submitted_at is not None else math.inf
    return (-entry.auroc, -f1, submitted, entry.end_time_ms, entry.run_id)


def rank(entries: Iterable[Entry]) -> list[Ranked]:
    """Best entry per user, ranked 1..n."""
    by_user: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_user[entry.user].append(entry)
    best = sorted(((min(own, key=sort_key), len(own)) for own in by_user.values()), key=lambda item: sort_key(item[0]))
    return [Ranked(position, entry, attempts) for position, (entry, attempts) in enumerate(best, start=1)]


def boards(entries: Iterable[Entry]) -> list[Board]:
    """One board per benchmark, in name order."""
    by_benchmark: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_benchmark[entry.benchmark].append(entry)
    return [
        Board(benchmark, page_slug(benchmark), rank(own), sorted(own, key=lambda e: (e.end_time_ms, e.run_id)))
        for benchmark, own in sorted(by_benchmark.items())
    ]


def user_pages(all_boards: list[Board]) -> list[UserPage]:
    """One page per user with every completed entry of theirs and their rank on each benchmark."""
    entries: dict[str, list[Entry]] = defaultdict(list)
    ranks: dict[str, dict[str, int]] = defaultdict(dict)
    for board in all_boards:
        for entry in board.entries:
            entries[entry.user].append(entry)
        for ranked in board.ranking:
            ranks[ranked.entry.user][board.benchmark] = ranked.rank
    return [
        UserPage(user, page_slug(user), sorted(own, key=lambda e: (-e.end_time_ms, e.run_id)), ranks[user])
        for user, own in sorted(entries.items())
    ]
