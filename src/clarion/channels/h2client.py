"""A small HTTP/2 client on asyncio and the ``h2`` library, for APNs and FCM.

One TLS connection carries many requests at once (streams), which is what lets a single
Python process send thousands of pushes a second where an HTTP/1.1 client manages hundreds.
The pool keeps a few long-lived connections per origin and spreads streams over them.

Failure handling that matters for push providers:

* A connection that closes (GOAWAY after N requests, a reset, a dead peer) fails only the
  streams it had not answered, with :class:`StreamLostError`; the caller may safely retry those
  on a fresh connection (the server processed none of them, or said so in GOAWAY).
* Flow control is honoured both ways: request bodies wait for window, received data is
  acknowledged as it is consumed.
* The peer's MAX_CONCURRENT_STREAMS caps streams per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack

from clarion.channels.h2slots import StreamSlots


def lean_connection(*, client_side: bool) -> h2.connection.H2Connection:
    """An ``h2`` connection tuned for many small requests whose headers we build ourselves,
    lower-case and valid. Skipping h2's outbound checks halves the per-request CPU; skipping
    its normalisation also lets the APNs provider token be indexed once per connection
    instead of being re-sent (and re-encoded) with every push."""
    config = h2.config.H2Configuration(
        client_side=client_side,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    conn = h2.connection.H2Connection(config)
    conn.encoder = _PlainEncoder()
    return conn


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding: a few more bytes on the wire for the values that
    change per request (path, id), much less CPU — pure-Python Huffman is the costliest
    step of a push otherwise."""

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return super().encode(headers, huffman=False)


_INITIAL_STREAMS = 100
"""Until the peer's SETTINGS say otherwise (RFC 9113 advises servers allow at least 100)."""


class StreamLostError(ConnectionError):
    """The connection went away before the stream was answered; retrying is safe."""


@dataclass(slots=True)
class H2Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Stream:
    future: asyncio.Future[H2Response]
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


class H2Connection:
    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._conn = lean_connection(client_side=True)
        self._streams: dict[int, _Stream] = {}
        self._window_open = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self._flush_pending = False
        self._slots = StreamSlots(_INITIAL_STREAMS)
        self._settled = asyncio.Event()
        """Set when the peer's first SETTINGS arrived (with its stream limit)."""
        self._handlers: dict[type[h2.events.Event], Callable[[Any], None]] = {
            h2.events.ResponseReceived: self._on_response,
            h2.events.DataReceived: self._on_data,
            h2.events.StreamEnded: lambda e: self._finish(e.stream_id),
            h2.events.StreamReset: self._on_reset,
            h2.events.WindowUpdated: lambda _: self._window_open.set(),
            h2.events.RemoteSettingsChanged: self._resize,
            h2.events.ConnectionTerminated: self._on_goaway,
        }

    @property
    def in_flight(self) -> int:
        return len(self._streams)

    async def connect(self, timeout_s: float = 10.0) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self._ssl else None,
            ),
            timeout_s,
        )
        self._conn.initiate_connection()
        self._conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self._flush()
        self._task = asyncio.create_task(self._read_loop())
        # Requests sent before the peer's limit is known could exceed it: wait for it.
        settled = asyncio.ensure_future(self._settled.wait())
        try:
            await asyncio.wait(
                [settled, self._task], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            settled.cancel()
        if not self._settled.is_set():
            await self.close()
            raise StreamLostError("no SETTINGS from the server")

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> H2Response:
        if self.closed:
            raise StreamLostError("connection closed")
        await self._slots.acquire()
        try:
            if self.closed:
                raise StreamLostError("connection closed")
            stream_id = self._conn.get_next_available_stream_id()
            future: asyncio.Future[H2Response] = asyncio.get_running_loop().create_future()
            self._streams[stream_id] = _Stream(future)
            scheme = "https" if self._ssl else "http"
            request_headers = [
                (":method", method),
                (":scheme", scheme),
                (":authority", f"{self.host}:{self.port}"),
                (":path", path),
                *headers.items(),
                ("content-length", str(len(body))),
            ]
            try:
                self._conn.send_headers(stream_id, request_headers, end_stream=not body)
                self._flush_soon()
                if body:
                    await self._send_body(stream_id, body)
            except (h2.exceptions.ProtocolError, OSError) as exc:
                self._streams.pop(stream_id, None)
                raise StreamLostError(str(exc)) from exc
            return await future
        finally:
            self._slots.release()

    async def _send_body(self, stream_id: int, body: bytes) -> None:
        view = memoryview(body)
        while view:
            window = min(
                self._conn.local_flow_control_window(stream_id),
                self._conn.max_outbound_frame_size,
            )
            if window <= 0:
                self._window_open.clear()
                await self._window_open.wait()
                if self.closed:
                    raise StreamLostError("connection closed while sending")
                continue
            chunk, view = view[:window], view[window:]
            self._conn.send_data(stream_id, bytes(chunk), end_stream=not view)
            self._flush_soon()

    def _flush_soon(self) -> None:
        """Write once per event-loop turn: a batch of requests started together leaves in a
        few TLS records instead of two per request."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        data = self._conn.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while not self.closed:
                data = await self._reader.read(65536)
                if not data:
                    break
                for event in self._conn.receive_data(data):
                    self._on_event(event)
                self._flush()
        except (OSError, h2.exceptions.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            self._lose_all("connection lost")
            if self._writer is not None:  # the reader owns the socket's lifetime
                self._writer.close()

    def _on_event(self, event: h2.events.Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _on_response(self, event: h2.events.ResponseReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream.headers = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in event.headers
            }

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream.body += event.data
        self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        self._fail(event.stream_id, StreamLostError(f"stream reset ({event.error_code})"))

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        self.closed = True
        last = event.last_stream_id or 0
        for stream_id in [s for s in self._streams if s > last]:
            self._fail(stream_id, StreamLostError("GOAWAY: not processed"))

    def _resize(self, event: h2.events.RemoteSettingsChanged) -> None:
        self._settled.set()
        changed = event.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
        if changed is not None:
            self._slots.resize(max(1, min(int(changed.new_value), 1000)))

    def _finish(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None and not stream.future.done():
            status = int(stream.headers.get(":status", "0"))
            stream.future.set_result(H2Response(status, stream.headers, bytes(stream.body)))

    def _fail(self, stream_id: int, error: Exception) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None and not stream.future.done():
            stream.future.set_exception(error)

    def _lose_all(self, reason: str) -> None:
        self.closed = True
        self._window_open.set()
        for stream_id in list(self._streams):
            self._fail(stream_id, StreamLostError(reason))

    async def close(self) -> None:
        self.closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._conn.close_connection()
                self._flush()
                self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._lose_all("closed")
        if self._writer is not None:  # TLS shuts down asynchronously: let it finish
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 2.0)


_ATTEMPTS = 16


class H2Pool:
    """Long-lived connections to one origin. A request whose connection went away before
    answering it (GOAWAY, reset) is retried on a live or fresh connection: the server did
    not process it, so this cannot send anything twice."""

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        connections: int = 2,
        timeout_s: float = 10.0,
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl_context if parts.scheme == "https" else None
        self._size = connections
        self._timeout_s = timeout_s
        self._connections: list[H2Connection] = []
        self._lock = asyncio.Lock()

    async def _connection(self) -> H2Connection:
        live = [c for c in self._connections if not c.closed]
        if len(live) < self._size:
            async with self._lock:
                live = [c for c in self._connections if not c.closed]
                if len(live) < self._size:
                    fresh = H2Connection(self.host, self.port, self._ssl)
                    await fresh.connect(self._timeout_s)
                    live.append(fresh)
                self._connections = live
        return min(live, key=lambda c: c.in_flight)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> H2Response:
        for attempt in range(1, _ATTEMPTS + 1):
            connection = await self._connection()
            try:
                return await asyncio.wait_for(
                    connection.request(method, path, headers, body), self._timeout_s
                )
            except StreamLostError:
                if attempt == _ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()
        self._connections = []


def client_tls(ca_file: str | None = None) -> ssl.SSLContext:
    """TLS for HTTP/2: ALPN h2, the system trust store plus ``ca_file`` when given."""
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2"])
    return context
