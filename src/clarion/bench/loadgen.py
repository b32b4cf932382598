"""A deliberately lean HTTP/1.1 load generator for the ingest and stream benchmarks.

The benchmark shares this machine's two cores with the server it measures, so every cycle
the client spends is taken from the server. A general-purpose client (aiohttp) spent about a
third of a core at 2,000 requests/s; this one writes pre-encoded requests on keep-alive
connections and reads just the status line and ``Content-Length``, at a fraction of that.
It speaks only what the benchmark needs: JSON POSTs to one host, answers with a length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    elapsed: float = 0.0
    first_answer_at: float | None = None
    """Wall-clock time of the first response."""


async def post_for(
    url: str,
    path: str,
    headers: dict[str, str],
    make_body: Callable[[int], bytes],
    *,
    seconds: float,
    connections: int,
    keep_bodies: bool = False,
    requests: int | None = None,
) -> LoadResult:
    """POST ``make_body(n)`` for ``n = 0, 1, 2 …`` on ``connections`` connections at once,
    for ``seconds`` or until ``requests`` have been sent."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    prefix = head.encode()
    result = LoadResult()
    counter = iter(range(1 << 62))
    started = time.perf_counter()
    deadline = started + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                n = next(counter)
                if requests is not None and n >= requests:
                    break
                body = make_body(n)
                sent = time.perf_counter()
                writer.write(prefix + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                status, answer = await _read_response(reader)
                if result.first_answer_at is None:
                    result.first_answer_at = time.time()
                result.latencies.append(time.perf_counter() - sent)
                result.statuses.append(status)
                if keep_bodies:
                    result.bodies.append(answer)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    result.elapsed = time.perf_counter() - started
    return result


class KeepAlive:
    """JSON POSTs to one server over a pool of keep-alive connections, one request at a time
    on each: as many connections open as requests are in flight at once."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        head = f"Host: {self._host}:{self._port}\r\nContent-Type: application/json\r\n"
        self._head = (head + "".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """The answer's status and body."""
        while self._idle:
            reader, writer = self._idle.pop()
            try:
                return await self._exchange(reader, writer, path, body)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise  # it started answering: not a connection closed while idle
                # The server closed it while it sat idle (its keep-alive timeout) before
                # reading this request: the request goes on another connection.
        reader, writer = await asyncio.open_connection(self._host, self._port)
        return await self._exchange(reader, writer, path, body)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes
    ) -> tuple[int, bytes]:
        request = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n"
        try:
            writer.write(request % (path.encode(), self._head, len(body)) + body)
            answer = await _read_response(reader)
        except BaseException:
            writer.close()  # half a conversation: not reused
            raise
        self._idle.append((reader, writer))
        return answer

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    body = await reader.readexactly(length) if length else b""
    return status, body
