"""A small HTTP/2 server on asyncio and ``h2``, for the APNs and FCM look-alikes.

It serves one async handler per request, answers on the stream the request came on, and can
behave like a real provider's edge: it may close a connection with GOAWAY after a number of
requests (as APNs and every load balancer eventually do), so clients must cope.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from clarion.channels.h2client import lean_connection


@dataclass(slots=True)
class H2Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(slots=True)
class _Pending:
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)


@dataclass(slots=True)
class _ConnectionState:
    pending: dict[int, _Pending] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    served: int = 0
    last_stream: int = 0
    flush_pending: bool = False


class DropConnection(Exception):  # noqa: N818 - a signal to the server, not an error
    """Raised by a handler: close the connection without answering (a dead provider edge)."""


Handler = Callable[[H2Request], Awaitable[tuple[int, dict[str, str], bytes]]]


class H2Server:
    def __init__(
        self,
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None,
        max_requests_per_connection: int | None = None,
        max_concurrent_streams: int | None = None,
    ) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self.max_requests_per_connection = max_requests_per_connection
        self.max_concurrent_streams = max_concurrent_streams
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port, ssl=self._ssl)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._connection(reader, writer)
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = lean_connection(client_side=False)
        conn.initiate_connection()
        if self.max_concurrent_streams is not None:
            limit: dict[h2.settings.SettingCodes | int, int] = {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams
            }
            conn.update_settings(limit)
        writer.write(conn.data_to_send())
        state = _ConnectionState()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if self._on_event(conn, writer, state, event):
                        await asyncio.gather(*state.tasks, return_exceptions=True)
                        conn.close_connection(last_stream_id=state.last_stream)
                        writer.write(conn.data_to_send())
                        return
                if not writer.is_closing():
                    writer.write(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError, ssl.SSLError):
            pass
        finally:
            for task in state.tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                writer.close()

    def _on_event(
        self,
        conn: h2.connection.H2Connection,
        writer: asyncio.StreamWriter,
        state: _ConnectionState,
        event: h2.events.Event,
    ) -> bool:
        """Handle one event; True when this connection has served its quota (GOAWAY)."""
        if isinstance(event, h2.events.RequestReceived):
            state.pending[event.stream_id] = _Pending(_text_headers(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            if event.stream_id in state.pending:
                state.pending[event.stream_id].body += event.data
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            request = state.pending.pop(event.stream_id, None)
            if request is not None:
                state.served += 1
                state.last_stream = event.stream_id
                task = asyncio.create_task(
                    self._answer(conn, writer, state, event.stream_id, request)
                )
                state.tasks.add(task)
                task.add_done_callback(state.tasks.discard)
                limit = self.max_requests_per_connection
                return limit is not None and state.served >= limit
        return False

    async def _answer(
        self,
        conn: h2.connection.H2Connection,
        writer: asyncio.StreamWriter,
        state: _ConnectionState,
        stream_id: int,
        pending: _Pending,
    ) -> None:
        headers = pending.headers
        request = H2Request(
            headers.get(":method", ""), headers.get(":path", ""), headers, bytes(pending.body)
        )
        try:
            status, extra, body = await self._handler(request)
        except DropConnection:
            writer.close()
            return
        except Exception:  # a broken fake must not take the connection down with it
            status, extra, body = 500, {}, b""
        try:
            response = [
                (":status", str(status)),
                ("content-length", str(len(body))),
                *extra.items(),
            ]
            conn.send_headers(stream_id, response, end_stream=not body)
            if body:
                conn.send_data(stream_id, body, end_stream=True)
        except (h2.exceptions.ProtocolError, OSError):
            return
        if not state.flush_pending:  # one write per loop turn for all answers ready
            state.flush_pending = True
            asyncio.get_running_loop().call_soon(_flush, conn, writer, state)


def _flush(
    conn: h2.connection.H2Connection, writer: asyncio.StreamWriter, state: _ConnectionState
) -> None:
    state.flush_pending = False
    data = conn.data_to_send()
    if data and not writer.is_closing():
        writer.write(data)


def _text_headers(raw: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw
    }
