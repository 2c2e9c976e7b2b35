"""Ports on the loopback interface: a free one, and whether one is taken."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port no one listens on right now (another process may take it before it is used)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(host: str, port: int) -> bool:
    """Whether something accepts connections on host:port (a server left behind, say)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
