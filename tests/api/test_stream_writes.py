"""How an SSE stream's messages reach the socket: straight from the hub while the socket
keeps up, through the stream's writer when it does not, and never out of order between
the two. The server side is a stand-in for uvicorn's per-request cycle with the same
flow control (a served API is checked to take the same path in ``test_live``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from starlette.types import Message as AsgiMessage
from starlette.types import Send

from clarion.api.chunks import ChunkWriter
from clarion.api.ingest import RAW_SEND
from clarion.api.routes.stream import EventStream
from clarion.api.services import ApiServices
from clarion.live.hub import Connection
from clarion.types import UserId


class _Transport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data


class _Flow:
    def __init__(self) -> None:
        self.write_paused = False
        self.writable = asyncio.Event()
        self.writable.set()

    def pause(self) -> None:
        self.write_paused = True
        self.writable.clear()

    def resume(self) -> None:
        self.write_paused = False
        self.writable.set()


class _Cycle:
    """What ``ChunkWriter`` reads of uvicorn's httptools cycle, and its ``send``: it waits
    while writing is paused, then frames the body as a chunk."""

    def __init__(self) -> None:
        self.transport = _Transport()
        self.flow = _Flow()
        self.disconnected = False
        self.chunked_encoding: bool | None = None

    async def send(self, message: AsgiMessage) -> None:
        if self.flow.write_paused:
            await self.flow.writable.wait()
        if message["type"] == "http.response.start":
            self.chunked_encoding = True
            return
        body = message.get("body", b"")
        self.transport.write(b"%x\r\n%b\r\n" % (len(body), body) if body else b"")

    def ids(self) -> list[str]:
        """The ``id:`` of every event written so far, in order."""
        lines = bytes(self.transport.written).split(b"\n")
        return [line[4:].decode() for line in lines if line.startswith(b"id: ")]


class _Hub:
    def disconnect(self, conn: Connection) -> None:
        pass


def _message(n: int) -> dict[str, Any]:
    return {"id": f"e:{n}", "type": "state", "data": {"n": n}}


async def _stream(cycle: _Cycle, conn: Connection, send: Send | None = None) -> asyncio.Task[None]:
    """``conn``'s stream written through ``send`` (the cycle's own unless given)."""
    gone = asyncio.Event()

    async def receive() -> AsgiMessage:
        await gone.wait()
        return {"type": "http.disconnect"}

    send = send or cycle.send
    svc = cast(ApiServices, type("Services", (), {"hub": _Hub()})())
    scope: dict[str, Any] = {"type": "http", RAW_SEND: send}
    task = asyncio.create_task(EventStream(svc, conn)(scope, receive, send))
    for _ in range(5):
        await asyncio.sleep(0)  # the response starts; the writer waits for messages
    return task


async def _end(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_messages_go_straight_to_the_socket_while_it_keeps_up() -> None:
    cycle, conn = _Cycle(), Connection(UserId("ann"), None, "e", 0)
    task = await _stream(cycle, conn)
    assert conn.sink is not None
    conn.give(_message(1))
    conn.give(_message(2))
    assert cycle.ids() == ["e:1", "e:2"]  # written at once, no task step in between
    assert conn.pending == []
    await _end(task)


async def test_a_paused_socket_queues_and_nothing_overtakes_what_waits() -> None:
    cycle, conn = _Cycle(), Connection(UserId("ann"), None, "e", 0)
    task = await _stream(cycle, conn)
    conn.give(_message(1))
    cycle.flow.pause()  # the device stopped reading: the server's buffer is full
    conn.give(_message(2))
    conn.give(_message(3))
    await asyncio.sleep(0)  # the writer took 2 and 3 and waits for the socket
    assert conn.pending == []
    cycle.flow.resume()
    conn.give(_message(4))  # the socket is writable again, but 2 and 3 are not out yet
    assert cycle.ids() == ["e:1"]
    for _ in range(5):
        await asyncio.sleep(0)
    conn.give(_message(5))
    assert cycle.ids() == ["e:1", "e:2", "e:3", "e:4", "e:5"]
    await _end(task)


async def test_a_server_without_the_cycle_gets_every_message_through_send() -> None:
    conn, wrapped = Connection(UserId("ann"), None, "e", 0), _Cycle()

    async def send(message: AsgiMessage) -> None:  # a plain function: no cycle behind it
        await wrapped.send(message)

    assert ChunkWriter.of(send) is None
    task = await _stream(wrapped, conn, send)
    assert conn.sink is None
    conn.give(_message(1))
    conn.give(_message(2))
    for _ in range(3):
        await asyncio.sleep(0)
    assert wrapped.ids() == ["e:1", "e:2"]
    await _end(task)
