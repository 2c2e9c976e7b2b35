"""The score-over-time chart, laid out here and drawn as inline SVG by `_chart.html` (no JS, no network).

Geometry is computed in Python so the template only places numbers; labels stay data and are
escaped by the template like every other user-controlled text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from .entries import Entry

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 34
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    entry: Entry


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    points: list[Point]
    best_path: str  # SVG path data: the best AUROC so far, as steps
    x_ticks: list[Tick]
    y_ticks: list[Tick]


def score_chart(entries: list[Entry]) -> Chart | None:
    """AUROC of every completed entry against its finish time, with the running best; None without entries."""
    if not entries:
        return None
    ordered = sorted(entries, key=lambda e: e.end_time_ms)
    t0, t1 = ordered[0].finished_at, ordered[-1].finished_at
    if t1 - t0 < DAY:  # a single day of data still gets a readable time axis
        t0, t1 = t0 - DAY / 2, t1 + DAY / 2
    lowest = min(e.auroc for e in ordered)
    y0 = max(0.0, math.floor(min(lowest, 0.9) * 10) / 10)
    y1 = max(1.0, max(e.auroc for e in ordered))
    left, right, top, bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM

    def x_of(t: float) -> float:
        return round(left + (t - t0) / (t1 - t0) * (right - left), 1)

    def y_of(score: float) -> float:
        return round(bottom - (score - y0) / (y1 - y0) * (bottom - top), 1)

    points = [Point(x_of(e.finished_at), y_of(e.auroc), e) for e in ordered]
    best_path, best = "", -math.inf
    for point in points:
        if point.entry.auroc > best:
            best = point.entry.auroc
            best_path += f"M{point.x},{point.y}" if not best_path else f"H{point.x}V{point.y}"
    best_path += f"H{right}"
    y_ticks = [Tick(y_of(y0 + (y1 - y0) * i / 4), f"{y0 + (y1 - y0) * i / 4:.3f}") for i in range(5)]
    # Over a few days, ticks would repeat the same date: show the hour as well.
    style = "%Y-%m-%d" if t1 - t0 > 4 * DAY else "%m-%d %H:%M"
    x_ticks = [Tick(x_of(t0 + (t1 - t0) * i / 4), _date(t0 + (t1 - t0) * i / 4, style)) for i in range(5)]
    return Chart(WIDTH, HEIGHT, left, right, top, bottom, points, best_path, x_ticks, y_ticks)


def _date(unix: float, style: str) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime(style)
