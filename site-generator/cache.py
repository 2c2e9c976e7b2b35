"""The incremental cache: every completed entry seen so far, in one JSON file.

A finished run does not change, so a build needs from MLflow only the runs that ended since the
newest cached one. The query reaches back `OVERLAP_MS` before it and merges by run id, so a run
whose end time is a little older than one already cached (set on a worker with a clock slightly
behind, or committed late) is still picked up. A cache made for another tracking URI, by another
format version, or that cannot be read, is ignored: the build is then cold, never wrong.
Deleting a run in MLflow is not seen by a warm build; delete the cache file (or build without one).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .entries import Entry

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: who and what of an entry come from the job index
OVERLAP_MS = 10 * 60 * 1000


@dataclass
class EntryCache:
    tracking_uri: str
    entries: dict[str, Entry] = field(default_factory=dict)  # by run id

    @property
    def newest_end_time_ms(self) -> int | None:
        return max((entry.end_time_ms for entry in self.entries.values()), default=None)

    def since_ms(self) -> int | None:
        """Where a warm query starts, or None when the cache is empty (then the read is cold)."""
        newest = self.newest_end_time_ms
        return None if newest is None else max(0, newest - OVERLAP_MS)

    def merge(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.entries[entry.run_id] = entry


def load_cache(path: Path, tracking_uri: str) -> EntryCache:
    """The cache at `path` when it is usable for `tracking_uri`, else an empty one."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != CACHE_FORMAT or data.get("tracking_uri") != tracking_uri:
            log.info("site cache %s is for another store or format; building cold", path)
            return EntryCache(tracking_uri)
        entries = [Entry.from_dict(item) for item in data["entries"]]
    except FileNotFoundError:
        return EntryCache(tracking_uri)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("site cache %s is unreadable (%s); building cold", path, exc)
        return EntryCache(tracking_uri)
    return EntryCache(tracking_uri, {entry.run_id: entry for entry in entries})


def save_cache(path: Path, cache: EntryCache) -> None:
    """Write the cache atomically: a crash leaves the old file or the new one, never half of one."""
    data = {"format": CACHE_FORMAT, "tracking_uri": cache.tracking_uri,
            "entries": [entry.to_dict() for entry in cache.entries.values()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
