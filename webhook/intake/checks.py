"""The folder rules, run in processes of their own.

Reading a participant's files parses YAML and Python; `ast.parse` holds the interpreter for the
whole parse, so in one of the service's threads a large file would stall every request. The rules
run instead in a small pool of processes (forkserver: a fresh interpreter, nothing of the service's
threads, sockets or secrets inherited). The forkserver itself loads the rules' modules once, so a
checker process starts with them loaded. A check that outlives its deadline is abandoned with its
pool, whose processes are ended; the next check gets a new pool, forked in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
WORKERS = 2
DEADLINE_SECONDS = 30.0
RULES_MODULE = f"{__package__}.behalf"  # the upload's rules; they import the push's (`push`)


class ChecksTimedOut(Exception):
    """The rules took longer than their deadline on what was sent."""


class RuleChecker:
    def __init__(self, workers: int = WORKERS, deadline: float = DEADLINE_SECONDS) -> None:
        self.workers = workers
        self.deadline = deadline
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, check: Callable[..., T], *args: Any) -> T:
        """`check(*args)` in a checker process (a module-level function, its arguments picklable). A pool
        broken under it (ended after another check's deadline, a process killed) is replaced, once."""
        for attempt in range(2):
            pool = self._current()
            try:
                return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(pool, check, *args),
                                              self.deadline)
            except TimeoutError:
                log.warning("a rule check ran past %.0f s: its checker processes are replaced", self.deadline)
                self._end(pool)
                raise ChecksTimedOut(f"checking the files took longer than {self.deadline:.0f} s") from None
            except BrokenProcessPool:
                self._end(pool)
                if attempt:
                    raise
                log.warning("the rules' checker processes were gone: checking again in new ones")
        raise AssertionError("unreachable")

    async def warm(self) -> None:
        """Start the checker processes and load the rules in them now, at the service's start: else the
        first push after a start pays for it (seconds, tens of seconds on a busy host). No deadline: a
        slow start on a busy host is no hostile input, and its pool must not be ended under a push."""
        pool = self._current()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):  # a pool that cannot start says so on the first real check
            await asyncio.gather(*(loop.run_in_executor(pool, _load_the_rules) for _ in range(self.workers)))

    def close(self) -> None:
        if self._pool is not None:
            self._end(self._pool)

    def _current(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            # Loaded by the forkserver when it starts (the first pool); a forkserver already running keeps
            # what it has. `__main__`, the default, stays first.
            context.set_forkserver_preload(["__main__", RULES_MODULE])
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    def _end(self, pool: ProcessPoolExecutor) -> None:
        if pool is self._pool:
            self._pool = None
        processes = list((getattr(pool, "_processes", None) or {}).values())  # the stuck ones must go now
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(OSError, ValueError):
                process.kill()


def _load_the_rules() -> None:
    """Run in a checker process: import what the checks need (what a fresh interpreter loads once)."""
    from . import behalf, push  # noqa: F401  (the push's and the upload's rules, and all they import)
