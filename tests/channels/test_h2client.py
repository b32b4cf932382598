"""The HTTP/2 client against our HTTP/2 server, over plain TCP (h2c)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from clarion.channels.h2client import H2Pool
from clarion.channels.h2slots import StreamSlots
from clarion.fakes.h2server import H2Request, H2Server


async def test_streams_never_exceed_the_limit_the_server_announces() -> None:
    in_flight = peak = 0
    full = asyncio.Event()

    async def slow(_: H2Request) -> tuple[int, dict[str, str], bytes]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 10:
            full.set()
        # The first streams wait for the limit to be reached, however slow this machine is.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(full.wait(), 2.0)
        in_flight -= 1
        return 200, {}, b"ok"

    server = H2Server(slow, ssl_context=None, max_concurrent_streams=10)
    port = await server.start()
    pool = H2Pool(f"http://127.0.0.1:{port}", ssl_context=None, connections=1)
    try:
        # All asked for at once, before the connection exists: none may go out until the
        # server has said how many it takes (it drops the connection over its limit).
        answers = await asyncio.gather(*(pool.request("POST", "/", {}, b"x") for _ in range(150)))
    finally:
        await pool.close()
        await server.stop()
    assert [a.status for a in answers] == [200] * 150
    assert peak == 10


async def test_slots_shrink_without_taking_back_and_grow_by_waking_waiters() -> None:
    slots = StreamSlots(3)
    for _ in range(3):
        await slots.acquire()
    slots.resize(1)  # the three open streams keep their slots
    waiting = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    slots.release()
    slots.release()
    await asyncio.sleep(0)
    assert not waiting.done()  # 1 in use, limit 1
    slots.resize(2)
    await asyncio.wait_for(waiting, 1)
    assert slots.in_use == 2


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    slots = StreamSlots(1)
    await slots.acquire()
    waiting = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # handed to the waiter …
    waiting.cancel()  # … which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert slots.in_use == 0
