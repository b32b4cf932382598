"""The stream benchmark's devices parse a chunked SSE response however its bytes are cut."""

from __future__ import annotations

import pytest

from clarion.bench.sse_devices import _StreamReading

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(text: bytes) -> bytes:
    return b"%x\r\n" % len(text) + text + b"\r\n"


async def test_events_are_heard_whatever_the_reads_cut() -> None:
    events = [b"id: e:1\nevent: ready\ndata: {}", b"id: e:2\nevent: state\ndata: {}"]
    body = _chunk(events[0] + b"\n\n") + _chunk(events[1][:10]) + _chunk(events[1][10:] + b"\n\n")
    error = _chunk(b'event: error\ndata: {"reason": "too slow"}\n\n')
    wire = HEAD + body + error + b"0\r\n\r\n"
    for cut in (1, 3, 7, len(wire)):  # every read size, down to a byte at a time
        heard: list[bytes] = []
        reading = _StreamReading(heard.append)
        for at in range(0, len(wire), cut):
            reading.data_received(wire[at : at + cut])
        assert heard == [*events, b'event: error\ndata: {"reason": "too slow"}'], cut
        assert reading.ended.done()
        assert reading.ended.exception() is None


async def test_a_refused_stream_ends_with_its_status() -> None:
    reading = _StreamReading(lambda _: None)
    reading.data_received(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
    with pytest.raises(RuntimeError, match="401"):
        await reading.ended
