"""File names for per-benchmark and per-user pages.

Names come from MLflow tags, which anyone with write access can set, so a name is used as a file
name only when it is plainly safe; anything else gets a sanitised name plus a hash of the original
after a `~`, a character the plain form never holds, so two names never share a page.
"""

from __future__ import annotations

import hashlib
import re

_PLAIN_PART = r"[a-z0-9][a-z0-9_-]{0,63}"
_PLAIN = re.compile(rf"{_PLAIN_PART}(/{_PLAIN_PART}){{0,3}}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def page_slug(name: str) -> str:
    """`visa/pcb1` -> `visa.pcb1`; `alice` -> `alice`; `<x>` -> `x~1b2c3d4e5f`."""
    if _PLAIN.fullmatch(name):
        return name.replace("/", ".")
    readable = _UNSAFE.sub("-", name).strip("-")[:48]
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{readable}~{digest}" if readable else f"~{digest}"
