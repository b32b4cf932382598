"""A streaming response's chunks written straight to the socket, past the server's ``send``.

A live stream writes one small chunk per message, 30,000 a second across an API process's
connections at seed 002's play rate. Through ``send`` each one is a coroutine and the
server's checks; from the hub, with no task to wake, it is one ``transport.write``. This
reaches into uvicorn's httptools protocol (the server Clarion runs), so it checks for what
it needs and answers None on anything else: callers then keep using ``send``. A test pins
that the served API takes this path.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Send


class ChunkWriter:
    """Chunked-encoding body writes on one response whose headers were sent."""

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._transport = cycle.transport
        self._flow = cycle.flow

    @classmethod
    def of(cls, send: Send) -> ChunkWriter | None:
        """The writer behind ``send`` (uvicorn's per-request cycle, after the response
        started with chunked encoding), or None if ``send`` is anything else."""
        cycle = getattr(send, "__self__", None)
        if getattr(cycle, "chunked_encoding", None) is not True:
            return None
        if not all(hasattr(cycle, name) for name in ("transport", "flow", "disconnected")):
            return None
        return cls(cycle)

    def writable(self) -> bool:
        """Whether a write goes out now: the device is there and the socket keeps up (the
        server's flow control has not paused writing)."""
        return not (self._flow.write_paused or self._cycle.disconnected)

    def write(self, body: bytes) -> None:
        self._transport.write(b"%x\r\n%b\r\n" % (len(body), body))
