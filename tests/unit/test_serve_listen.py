"""serve holds its ports from its first moment: a second serve on the same port is refused at once."""

from __future__ import annotations

import socket

import pytest

from leadersboard.cli.serve import ServeError, listen

from support.ports import ephemeral_start, fresh_port


def test_a_port_serve_listens_on_cannot_be_taken_while_it_starts() -> None:
    # Bound with SO_REUSEADDR but not listening, a socket holds nothing on Linux: a second serve could bind
    # the same port and the one that listened first would answer the other's clients.
    port = fresh_port()
    held = listen("127.0.0.1", port)
    try:
        with pytest.raises(ServeError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            listen("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # a client that comes early waits in the backlog until the app accepts it
    finally:
        held.close()


def test_each_test_process_draws_ports_below_the_kernels_ephemeral_range() -> None:
    ports = [fresh_port() for _ in range(3)]
    assert len(set(ports)) == 3 and all(port < ephemeral_start() for port in ports)
