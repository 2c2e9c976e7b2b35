"""Starting a private `redis-server` (for `serve` without a configured Redis, and for tests)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from .ports import free_port, listening

START_SECONDS = 30  # loading a large AOF, or a busy host


class RedisStartError(Exception):
    """redis-server is missing or did not come up."""


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(directory: Path, port: int | None = None, appendonly: bool = True,
                password: str | None = None) -> RedisServer:
    """A redis-server on 127.0.0.1 with its data in `directory` (a random password unless given)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisStartError("redis-server is not installed: 'apt-get install redis-server', or point "
                              "LEADERSBOARD_REDIS_URL at a running Redis.")
    directory.mkdir(parents=True, exist_ok=True)
    if port and listening("127.0.0.1", port):  # else the ping below could be answered by that server
        raise RedisStartError(f"port {port} is in use: another server listens there")
    port = port or free_port()
    password = password or secrets.token_urlsafe(24)
    config = "\n".join([
        "bind 127.0.0.1", f"port {port}", f"dir {directory}", f"requirepass {password}",
        f"appendonly {'yes' if appendonly else 'no'}", 'save ""', "daemonize no", "loglevel warning",
        f"logfile {directory / 'redis.log'}",
        "set-proc-title no",  # a new title would overwrite its environment, which `serve` finds its processes by
    ])
    # The password goes in through stdin ('-' config file), never on a command line others can read.
    process = subprocess.Popen([binary, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    assert process.stdin is not None
    process.stdin.write(config.encode())
    process.stdin.close()
    server = RedisServer(process, port, password)
    deadline = time.monotonic() + START_SECONDS
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=1)
    try:
        while True:
            try:
                if client.ping():
                    return server
            except redis.RedisError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                log = directory / "redis.log"
                tail = log.read_text(errors="replace")[-300:] if log.exists() else ""
                raise RedisStartError(f"redis-server did not start on port {port}: {tail}")
            time.sleep(0.05)
    finally:
        client.close()
