"""HTTP Basic credentials (user name and API token), as git and browsers send them."""

from __future__ import annotations

import base64
import binascii

BASIC_CHALLENGE = b'Basic realm="LeadersBoard", charset="UTF-8"'


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(name, token) from an `Authorization: Basic ...` header; None when absent or malformed."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, token = decoded.partition(":")
    return (name, token) if sep else None
