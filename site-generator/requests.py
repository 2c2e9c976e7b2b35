"""Rebuilds asked for over Redis: a worker on another host ends a job but cannot build this host's
site, so it publishes on `SITE_REBUILD_CHANNEL` and the server's builder answers (a burst builds once)."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from leadersboard.contract import SITE_REBUILD_CHANNEL

from .trigger import SiteBuilder

log = logging.getLogger(__name__)
RETRY_SECONDS = 2.0  # Redis away: listen again after this


async def rebuild_on_requests(redis: Redis, site: SiteBuilder) -> None:
    """Run until cancelled; a Redis outage is waited out, and a build follows it (requests may be lost)."""
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(SITE_REBUILD_CHANNEL)
            while True:
                # Polled with a timeout under the client's socket timeout: an idle channel is not an error.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    site.request_rebuild()
        except (RedisError, OSError) as exc:
            log.warning("site rebuild requests: Redis is away (%s); listening again", type(exc).__name__)
            await asyncio.sleep(RETRY_SECONDS)
            site.request_rebuild()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py


async def request_rebuild(redis: Redis) -> None:
    """Ask the server to rebuild its site (a job ended on this host)."""
    await redis.publish(SITE_REBUILD_CHANNEL, "job ended")
