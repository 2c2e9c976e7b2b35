"""`leadersboard serve`: the whole platform on one machine, stopped cleanly on Ctrl-C / SIGTERM."""

from __future__ import annotations

import logging
from dataclasses import replace

import uvicorn

from leadersboard.redis_server import RedisServer, start_redis
from leadersboard.settings import Settings

from .app import create_app

log = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    started: list[RedisServer] = []
    try:
        if not settings.redis_url:
            server = start_redis(settings.run_dir / "redis")
            started.append(server)
            settings = replace(settings, redis_url=server.url)
            log.info("started redis-server on 127.0.0.1:%s", server.port)
        config = uvicorn.Config(create_app(settings), host=settings.api_host, port=settings.api_port,
                                log_level="warning", lifespan="on")
        print(f"LeadersBoard API and git on {settings.base_url} "
              f"(clone {settings.base_url}/git/submissions.git); Ctrl-C stops", flush=True)
        uvicorn.Server(config).run()  # handles SIGINT/SIGTERM with a graceful shutdown
    finally:
        for process in reversed(started):
            process.stop()
