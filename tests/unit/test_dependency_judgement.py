"""A dependency is down after two missed answers in a row, and until its first answer."""

from __future__ import annotations

import asyncio

from leadersboard.webhook.dependencies import Dependencies


def test_one_missed_answer_is_not_an_outage() -> None:
    watcher = Dependencies("redis://127.0.0.1:9/0", "http://127.0.0.1:9", "queue")  # connects lazily: nothing here
    try:
        judged = [watcher._judge("mlflow", answered) for answered in (False, True, False, True, False, False, True)]
        assert judged == [False, True, True, True, True, False, True]
    finally:
        asyncio.run(watcher.close())
