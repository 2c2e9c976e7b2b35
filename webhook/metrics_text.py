"""Prometheus' text exposition format (version 0.0.4), written by hand: a few families of gauges and
counters need no client library, and nothing here keeps state between scrapes.

Each family is written once: `# HELP`, `# TYPE`, then its samples, `name{label="value"} number`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KINDS = ("counter", "gauge", "histogram", "summary", "untyped")


@dataclass
class Family:
    """One metric: its name, type and help, and its samples (labels, value; `suffix` for a histogram's
    `_bucket`, `_sum` and `_count`)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> Family:
        self.samples.append((suffix, labels, value))
        return self


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        assert family.kind in KINDS, family.kind
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in family.samples:
            lines.append(f"{family.name}{suffix}{_labels(labels)} {number(value)}")
    return "\n".join(lines) + "\n"


def escape_label(value: str) -> str:
    """A label value's escapes: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """A HELP text's escapes: backslash and line feed (a quote stays as it is)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """A sample's value: integers without a fraction, and the format's spellings of infinity and NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in sorted(labels.items())) + "}"
