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



def log_key(job_id: str) -> str:
    """String: the tail of a job's output, readable while it runs and for a week after."""
    return f"{PREFIX}:log:{job_id}"


def heartbeat_key(job_id: str) -> str:
    """String with a TTL: present while a live worker runs the job."""
    return f"{PREFIX}:heartbeat:{job_id}"


SITE_REBUILD_CHANNEL = f"{PREFIX}:site:rebuild"
