"""Rebuilding the site after finished jobs, coalesced: a burst of requests builds once (or twice).

One asyncio task waits for a request, then builds in a thread so the event loop keeps running.
Requests that arrive while a build runs set the flag again, which causes exactly one more build
afterwards: the finished job that asked is always on the site, and N requests never cost N builds.

    builder = SiteBuilder(tracking_uri, db_path, out_dir, cache_path)
    await builder.start()          # e.g. in the worker's on_startup
    builder.request_rebuild()      # after each finished job; returns at once
    await builder.stop()           # on_shutdown: finishes what was asked, then stops
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from .build import SiteReport, build_site

log = logging.getLogger(__name__)

BuildFunction = Callable[[str, Path, Path, Path | None], SiteReport]


class SiteBuilder:
    def __init__(self, tracking_uri: str, db_path: Path, out_dir: Path, cache_path: Path | None = None, *,
                 build: BuildFunction = build_site) -> None:
        self.tracking_uri = tracking_uri
        self.db_path = db_path
        self.out_dir = out_dir
        self.cache_path = cache_path
        self._build = build
        self.builds = 0  # builds attempted, failed ones included
        self.failures = 0
        self.last_report: SiteReport | None = None
        self.last_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._requested: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"SiteBuilder(out_dir={str(self.out_dir)!r}, builds={self.builds}, failures={self.failures})"

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("SiteBuilder is already started")
        self._stopped = False
        self._loop = asyncio.get_running_loop()
        self._requested = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._run(), name="site-builder")

    def request_rebuild(self) -> None:
        """Ask for a build; returns at once. Safe from the event loop and from other threads."""
        loop = self._loop
        if self._stopped:
            log.debug("site rebuild asked after stop(); the next start builds the site anyway")
            return
        if loop is None or self._task is None:
            raise RuntimeError("SiteBuilder.start() must be awaited before request_rebuild()")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._request()
        else:
            loop.call_soon_threadsafe(self._request)

    async def wait_idle(self) -> None:
        """Return when no build is running or asked for."""
        assert self._idle is not None, "SiteBuilder.start() first"
        await self._idle.wait()

    async def stop(self, drain: bool = True) -> None:
        """Stop the builder; with `drain`, after the builds already asked for have run."""
        if self._task is None:
            return
        if drain:
            await self.wait_idle()
        self._stopped = True  # later requests are ignored, not queued behind a builder that will not run
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def __aenter__(self) -> SiteBuilder:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _request(self) -> None:
        assert self._requested is not None and self._idle is not None
        self._idle.clear()
        self._requested.set()

    async def _run(self) -> None:
        assert self._requested is not None and self._idle is not None
        while True:
            await self._requested.wait()
            self._requested.clear()
            try:
                self.last_report = await asyncio.to_thread(self._build, self.tracking_uri, self.db_path,
                                                           self.out_dir, self.cache_path)
                self.last_error = None
            except Exception as exc:
                # A failed build must not stop later ones (the next finished job retries); log it once.
                self.failures += 1
                self.last_error = exc
                log.exception("site build failed")
            finally:
                self.builds += 1
            if not self._requested.is_set():
                self._idle.set()
