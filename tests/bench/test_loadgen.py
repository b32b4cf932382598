"""The benchmarks' lean HTTP client (``bench.loadgen.KeepAlive``) against a server that
hangs up the way uvicorn does: an idle keep-alive connection, or in the middle of an answer."""

from __future__ import annotations

import asyncio

import pytest

from clarion.bench.loadgen import KeepAlive


class _OneAnswerServer:
    """Answers one POST per connection with ``answer``, then closes the connection."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.hung_up = asyncio.Event()
        self.connections = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if b"Content-Length" in line
        )
        await reader.readexactly(length)
        writer.write(self.answer)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        self.hung_up.set()


async def _posting(answer: bytes, times: int) -> tuple[list[tuple[int, bytes]], int]:
    handler = _OneAnswerServer(answer)
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = KeepAlive(f"http://127.0.0.1:{port}", {"Authorization": "Bearer k"})
    answers = []
    try:
        for _ in range(times):
            answers.append(await client.post("/v1/state", b'{"updates": []}'))
            await handler.hung_up.wait()  # the connection it used is closed now
            handler.hung_up.clear()
    finally:
        client.close()
        server.close()
        await server.wait_closed()
    return answers, handler.connections


def test_a_connection_closed_while_idle_is_replaced_and_the_request_goes_through() -> None:
    answers, connections = asyncio.run(
        _posting(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", times=3)
    )
    assert answers == [(200, b"ok")] * 3
    assert connections == 3


def test_a_server_hanging_up_mid_answer_is_an_error() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(_posting(b"HTTP/1.1 200 OK\r\nContent-Le", times=1))
