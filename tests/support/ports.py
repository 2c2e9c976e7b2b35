"""Ports for the servers tests start: each test process draws from its own range.

`free_port()` asks the kernel for any free port and lets it go; a server started from that number binds it
seconds later, and meanwhile another test process (pytest-xdist runs several) may be handed the same number
and start its own server there — a test then talks to another test's platform. Here each process counts
through a range of its own, below the kernel's ephemeral range (so no port the kernel hands out, to the
product's own `free_port()` say, falls in it), and skips a port something already listens on.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

FIRST_PORT = 12000
PORTS_PER_PROCESS = 2000  # 8 processes fit below 28000; the ephemeral range starts at 32768
_counter: Iterator[int] | None = None


def _process_index() -> int:
    """pytest-xdist's worker number (gw3 → 3); 0 for a run in one process (it has no workers then)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0)


def ephemeral_start() -> int:
    """The first port the kernel hands out for bind(0) and outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def fresh_port() -> int:
    """A port that no other test process will be handed, and that nothing binds right now."""
    global _counter
    if _counter is None:
        first = FIRST_PORT + _process_index() * PORTS_PER_PROCESS
        assert first + PORTS_PER_PROCESS <= ephemeral_start(), "too many test processes for the port ranges"
        _counter = itertools.cycle(range(first, first + PORTS_PER_PROCESS))
    for port in itertools.islice(_counter, PORTS_PER_PROCESS):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port left in this test process's range")
