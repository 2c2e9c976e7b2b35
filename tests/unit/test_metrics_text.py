"""The Prometheus text writer: escapes, numbers, and each family's HELP and TYPE before its samples."""

from __future__ import annotations

import math

from leadersboard.webhook.metrics_text import Family, escape_label, number, render


def test_label_values_escape_backslash_quote_and_newline() -> None:
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    text = render([Family("x_total", "counter", "Help with a \\ and a\nline.").add(2, reason='r"\\\n')])
    assert text == ('# HELP x_total Help with a \\\\ and a\\nline.\n'
                    '# TYPE x_total counter\n'
                    'x_total{reason="r\\"\\\\\\n"} 2\n')


def test_numbers_and_label_order() -> None:
    assert [number(v) for v in (3, 2.0, 0.25, math.inf, -math.inf, math.nan, True)] == [
        "3", "2", "0.25", "+Inf", "-Inf", "NaN", "1"]
    family = Family("h", "histogram", "A histogram.").add(1, "_bucket", le="+Inf", b="x").add(1, "_count")
    assert render([family]).splitlines()[2:] == ['h_bucket{b="x",le="+Inf"} 1', "h_count 1"]
