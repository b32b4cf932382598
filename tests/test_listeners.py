"""Several API processes on one port, each listening on its own socket (``api.listeners``)."""

from __future__ import annotations

import socket
from collections import Counter
from multiprocessing.reduction import ForkingPickler

import pytest

from clarion.api import listeners


def _as_a_spawned_process_gets_it(reservation: socket.socket) -> socket.socket:
    """What uvicorn hands each API process it spawns: the socket, pickled."""
    sock: socket.socket = ForkingPickler.loads(bytes(ForkingPickler.dumps(reservation)))
    return sock


def test_each_process_gets_its_own_listener_and_connections_spread_over_them() -> None:
    with listeners.reserve_port("127.0.0.1", 0) as reservation:
        port = reservation.getsockname()[1]
        own = [_as_a_spawned_process_gets_it(reservation) for _ in range(2)]
        clients: list[socket.socket] = []
        try:
            assert own[0].fileno() != own[1].fileno()
            for sock in own:
                assert sock.getsockname() == ("127.0.0.1", port)
                sock.listen(64)
                sock.setblocking(False)
            # Opened together, as a producer's keep-alive pool opens them.
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
            accepted: Counter[int] = Counter()
            for index, sock in enumerate(own):
                while True:
                    try:
                        sock.accept()[0].close()
                    except BlockingIOError:
                        break
                    accepted[index] += 1
            assert sum(accepted.values()) == 32
            assert min(accepted[0], accepted[1]) >= 4, accepted  # both listeners get some
        finally:
            for sock in [*own, *clients]:
                sock.close()


def test_the_reserved_port_is_held_against_other_programs() -> None:
    with listeners.reserve_port("127.0.0.1", 0) as reservation:
        port = reservation.getsockname()[1]
        stranger = socket.socket()
        with stranger, pytest.raises(OSError, match="in use"):  # no SO_REUSEPORT: refused
            stranger.bind(("127.0.0.1", port))
