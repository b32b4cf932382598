"""Thousands of devices listening on ``/v1/me/stream``, for ``clarion bench stream``.

One process holds every connection (asyncio, uvloop when present) and reads them the lean
way: a pre-encoded request, chunked frames parsed into SSE events as bytes arrive (a
protocol, not a stream reader), only a state message's ``value`` decoded. It shares the two
cores with the server it measures, so every cycle it spends is the server's loss; a general
client (httpx, aiohttp) cost several times more per message. Most of what it spends now is
the kernel's receive.

Each device keeps what a real app keeps: its last event id (to resume with
``Last-Event-ID``) and, for the bench, the last ``n`` of its person's counter, so a gap —
an update the device never heard — is counted as lost the moment it shows.

It is driven over a ``multiprocessing`` pipe by ``bench.stream``: ``connect``, ``measure``,
``storm`` (every connection dropped and reopened from its last id), ``settle`` (wait
until each device has heard its person's last update), ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson

from clarion import collector

_WAVE = 500
"""Connections opened at once (the server's accept backlog is 2,048)."""


@dataclass(slots=True)
class Device:
    name: str
    person: int
    token: str
    last_id: str | None = None
    last_n: int = 0
    lost: int = 0
    doubled: int = 0
    resets: int = 0
    cut_off: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Devices:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.devices: list[Device] = []
        self.latencies = array("d")
        self.measuring = False
        self.received = 0
        self.failures: list[str] = []

    async def connect(self, devices: list[Device]) -> float:
        """Open every device's stream, ``_WAVE`` at a time; seconds until all are ready."""
        started = time.perf_counter()
        for at in range(0, len(devices), _WAVE):
            wave = devices[at : at + _WAVE]
            for device in wave:
                device.ready = asyncio.Event()
                device.task = asyncio.create_task(self._listen(device))
            await asyncio.gather(*(d.ready.wait() for d in wave))
        return time.perf_counter() - started

    async def drop_all(self) -> None:
        for device in self.devices:
            if device.task is not None:
                device.task.cancel()
        for device in self.devices:
            if device.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await device.task

    async def _listen(self, device: Device) -> None:
        try:
            await self._stream(device)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported to the bench, not swallowed
            self.failures.append(f"{device.name}: {exc!r}")
            device.ready.set()

    async def _stream(self, device: Device) -> None:
        loop = asyncio.get_running_loop()
        transport, reading = await loop.create_connection(
            lambda: _StreamReading(lambda event: self._hear(device, event)), self.host, self.port
        )
        try:
            resume = f"Last-Event-ID: {device.last_id}\r\n" if device.last_id else ""
            transport.write(
                f"GET /v1/me/stream?device_id={device.name} HTTP/1.1\r\n"
                f"Host: {self.host}\r\nAuthorization: Bearer {device.token}\r\n"
                f"Accept: text/event-stream\r\n{resume}\r\n".encode()
            )
            await reading.ended
        finally:
            transport.close()

    def _hear(self, device: Device, event: bytes) -> None:
        if event.startswith(b":"):
            return  # a heartbeat
        event_id, kind, data = _fields(event)
        if event_id is not None:
            device.last_id = event_id
        if kind == b"state" and data is not None:
            value = orjson.loads(data)["value"]
            n = value["n"]
            if n <= device.last_n:
                device.doubled += 1
                return
            device.lost += n - device.last_n - 1
            device.last_n = n
            self.received += 1
            if self.measuring:
                self.latencies.append(time.time() - value["t"])
        elif kind == b"ready":
            device.ready.set()
        elif kind == b"reset":
            device.resets += 1
        elif kind == b"error":
            device.cut_off += 1

    async def settle(self, expected: dict[int, int], timeout_s: float) -> float:
        """Wait until every device heard its person's last ``n``; seconds it took."""
        started = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(d.last_n >= expected.get(d.person, 0) for d in self.devices):
                break
            await asyncio.sleep(0.05)
        return time.perf_counter() - started

    def tally(self, expected: dict[int, int]) -> dict[str, Any]:
        behind = sum(max(expected.get(d.person, 0) - d.last_n, 0) for d in self.devices)
        return {
            "lost": sum(d.lost for d in self.devices) + behind,
            "doubled": sum(d.doubled for d in self.devices),
            "resets": sum(d.resets for d in self.devices),
            "cut_off": sum(d.cut_off for d in self.devices),
            "received": self.received,
            "failures": self.failures[:5],
            "failed": len(self.failures),
        }


class _StreamReading(asyncio.Protocol):
    """One device's response, parsed as its bytes arrive: the status line and headers,
    then HTTP/1.1 chunks, then SSE events (``hear``). Parsing in ``data_received`` costs
    no task wake-up per message, which a stream reader's awaits did."""

    def __init__(self, hear: Callable[[bytes], None]) -> None:
        self._hear = hear
        self._buffer = b""
        self._events = b""
        """SSE text not yet closed by a blank line."""
        self._in_body = False
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        at = 0
        if not self._in_body:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                self._buffer = buffer
                return
            status = buffer[: buffer.find(b"\r\n")]
            if b" 200 " not in status:
                self._end(RuntimeError(f"stream refused: {status!r}"))
                return
            self._in_body, at = True, head_end + 4  # the server streams chunked (HTTP/1.1)
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                break
            size = int(buffer[at:line_end] or b"0", 16)
            if size == 0:  # the last chunk: what came before it is heard first
                self._dispatch()
                self._end(None)
                return
            if line_end + 2 + size + 2 > len(buffer):
                break  # the rest of this chunk is still on its way
            self._events += buffer[line_end + 2 : line_end + 2 + size]
            at = line_end + 2 + size + 2
        self._buffer = buffer[at:]
        self._dispatch()

    def _dispatch(self) -> None:
        if b"\n\n" in self._events:
            *events, self._events = self._events.split(b"\n\n")
            for event in events:
                self._hear(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)

    def _end(self, exc: BaseException | None) -> None:
        if self.ended.done():
            return
        if exc is None:
            self.ended.set_result(None)
        else:
            self.ended.set_exception(exc)


def _fields(event: bytes) -> tuple[str | None, bytes | None, bytes | None]:
    """An SSE event's id, type and data."""
    event_id = kind = data = None
    for line in event.split(b"\n"):
        if line.startswith(b"id: "):
            event_id = line[4:].decode()
        elif line.startswith(b"event: "):
            kind = line[7:]
        elif line.startswith(b"data: "):
            data = line[6:]
    return event_id, kind, data


async def _serve(pipe: Connection, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    devices = Devices(host, port)
    while True:
        command, arg = await loop.run_in_executor(None, pipe.recv)
        if command == "connect":
            devices.devices = [Device(name, person, token) for name, person, token in arg]
            pipe.send(await devices.connect(devices.devices))
        elif command == "measure":
            devices.measuring = bool(arg)
            if arg:
                devices.latencies = array("d")
            pipe.send(len(devices.latencies))
        elif command == "latencies":
            pipe.send(devices.latencies.tobytes())
        elif command == "storm":
            await devices.drop_all()
            pipe.send(await devices.connect(devices.devices))
        elif command == "settle":
            expected, timeout_s = arg
            waited = await devices.settle(expected, timeout_s)
            pipe.send((waited, devices.tally(expected)))
        elif command == "close":
            await devices.drop_all()
            pipe.send(None)
            return


def run(pipe: Connection, host: str, port: int) -> None:
    """The listening process's main (``multiprocessing`` target)."""
    collector.settle()
    try:
        import uvloop  # optional speed-up, same behaviour without it

        uvloop.run(_serve(pipe, host, port))
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        asyncio.run(_serve(pipe, host, port))
