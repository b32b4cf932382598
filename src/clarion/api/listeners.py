"""Several API processes on one port, each with its own listening socket.

uvicorn's ``--workers`` shares one listening socket between its processes. Every process
then waits on it, and the first to wake accepts everything queued, so connections opened
together land in the same process. Long-lived connections keep it that way: a product
backend's handful of keep-alive connections, posting 15,000 state updates a second, were
all served by one of two processes (97 % busy) while the other idled at 60 % (py-spy, the
stream benchmark).

Here the supervisor only reserves the port, with ``SO_REUSEPORT``, and each process binds
its own socket to it with the same option. The kernel then hands each new connection to
one listener by a hash of its addresses: connections spread evenly, whoever is awake.
uvicorn passes its sockets to the processes it spawns by pickling them; ``PortReservation``
pickles as "bind a fresh socket to this address", so every process, a restarted one too,
gets a listener of its own.
"""

from __future__ import annotations

import socket
from typing import Any


class PortReservation(socket.socket):
    """A bound, not listening ``SO_REUSEPORT`` socket: holds the port (and picks it when
    asked for port 0); in a child process it becomes that process's own listener."""

    def __reduce__(self) -> tuple[Any, ...]:
        host, port = self.getsockname()[:2]
        return own_listener, (self.family, host, port)


def reserve_port(host: str, port: int) -> PortReservation:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reservation = PortReservation(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    _share(reservation)
    reservation.bind((host, port))
    return reservation


def own_listener(family: int, host: str, port: int) -> socket.socket:
    """A socket bound to the reserved address; the server listens on it."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    _share(sock)
    sock.bind((host, port))
    return sock


def _share(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
