"""Redis key names, in one place."""

PREFIX = "leadersboard"


def hourly_key(user: str) -> str:
    """Sorted set: this user's submissions of the rolling hour (member id, score time)."""
    return f"{PREFIX}:quota:{user}:hourly"


def active_key(user: str) -> str:
    """Sorted set: this user's jobs pending or running (member job id, score time)."""
    return f"{PREFIX}:quota:{user}:active"


def pending_push_key(push_id: str) -> str:
    """Hash: ref -> JSON of the submissions a pre-receive admitted, until the push settles."""
    return f"{PREFIX}:push:{push_id}"

