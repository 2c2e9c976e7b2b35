"""A job's output: its tail in Redis (readable live, bounded) and the whole, up to a cap, in a file
that becomes the job's log artifact."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType

from redis.asyncio import Redis
from redis.exceptions import RedisError

from leadersboard.contract import log_key

KEEP_AFTER_END_SECONDS = 7 * 24 * 3600

# Append, then keep only the last ARGV[2] bytes: one round trip, never over the bound.
_APPEND_BOUNDED = """
local size = redis.call('APPEND', KEYS[1], ARGV[1])
local limit = tonumber(ARGV[2])
if size > limit then
  redis.call('SET', KEYS[1], redis.call('GETRANGE', KEYS[1], size - limit, -1))
end
return size
"""


class LiveLog:
    def __init__(self, redis: Redis, job_id: str, path: Path, max_bytes: int) -> None:
        self.redis = redis
        self.key = log_key(job_id)
        self.path = path
        self.max_bytes = max_bytes
        self.file_limit = 5 * max_bytes
        self.written = 0
        self._append = redis.register_script(_APPEND_BOUNDED)
        self._file = path.open("ab", buffering=0)  # a chunk that fails is lost alone, never retried

    async def write(self, chunk: bytes) -> None:
        if self.written < self.file_limit:
            part = chunk[: self.file_limit - self.written]
            self.written += len(part)
            # The file lives in the job's scratch folder, which the job may have filled: the tail in Redis
            # still has this chunk.
            with contextlib.suppress(OSError):
                self._file.write(part)
                if self.written >= self.file_limit:
                    self._file.write(b"\n[leadersboard] log truncated here; the live log keeps the tail\n")
        with contextlib.suppress(RedisError):  # Redis restarting: the file still has it, the job goes on
            await self._append(keys=[self.key], args=[chunk, self.max_bytes])

    async def note(self, text: str) -> None:
        """A platform line, marked so it cannot be mistaken for the submission's output."""
        await self.write(f"[leadersboard] {text}\n".encode())

    async def close(self) -> None:
        self._file.close()
        with contextlib.suppress(RedisError):
            await self.redis.expire(self.key, KEEP_AFTER_END_SECONDS)

    async def __aenter__(self) -> LiveLog:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
