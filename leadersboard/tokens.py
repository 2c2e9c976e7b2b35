"""API tokens: 32 random bytes, shown once, stored only as a SHA-256 hash.

A token carries 256 bits of entropy, so a fast hash is enough (no password stretching needed);
the stored hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "lbt_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)
