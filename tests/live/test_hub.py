"""A connection's mailbox and the hub's heartbeats, on their own (no server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, cast

import pytest

from clarion.live.hub import QUEUE_LIMIT, Connection, Hub
from clarion.live.log import Entry, Head, Kind, Replay
from clarion.stores.base import StreamStore
from clarion.types import UserId


def _message(n: int) -> dict[str, object]:
    return {"id": f"e:{n}", "type": "state", "data": {"n": n}}


async def _nothing(user: UserId, entries: object) -> list[dict[str, object] | None]:
    raise AssertionError("heartbeats render nothing")


def _hub() -> Hub:
    return Hub(cast(StreamStore, object()), _nothing)  # heartbeats touch no store


async def test_a_writer_takes_everything_waiting_in_order() -> None:
    conn = Connection(UserId("ann"), None, "e", 0)
    waiting = asyncio.ensure_future(conn.take())
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing yet: the writer sleeps
    assert conn.give(_message(1))
    assert conn.give(_message(2))  # before the writer ran: both in its next write
    assert await waiting == [_message(1), _message(2)]
    conn.give(_message(3))
    assert await conn.take() == [_message(3)]


async def test_a_device_too_far_behind_is_closed_with_a_reason() -> None:
    conn = Connection(UserId("ann"), None, "e", 0)
    for n in range(QUEUE_LIMIT):
        assert conn.give(_message(n))
    assert not conn.give(_message(QUEUE_LIMIT))
    assert conn.closed is not None
    assert "too slow" in conn.closed
    assert await conn.take() == [None]  # what was queued is dropped: it must reconnect
    assert not conn.give(_message(0))


async def test_quiet_connections_are_woken_for_a_heartbeat() -> None:
    hub = _hub()
    quiet = Connection(UserId("ann"), None, "e", 0)
    busy = Connection(UserId("bob"), None, "e", 0)
    hub.connect(quiet)
    hub.connect(busy)
    quiet.wrote_at = time.monotonic() - 60  # its last write was a minute ago
    stop = asyncio.Event()
    beating = asyncio.create_task(hub.heartbeats(stop, every_s=1.0))
    try:
        assert await asyncio.wait_for(quiet.take(), 5) == []  # woken with nothing: a ping
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(busy.take(), 0.1)  # wrote just now: left asleep
    finally:
        stop.set()
        await beating
        hub.disconnect(quiet)
        hub.disconnect(busy)


async def test_a_persons_entries_are_rendered_once_for_all_their_devices() -> None:
    calls: list[list[int]] = []

    async def render(user: UserId, entries: Sequence[Entry]) -> list[dict[str, Any] | None]:
        calls.append([e.pos for e in entries])
        return [{"id": e.position, "type": "state", "data": e.body} for e in entries]

    hub = Hub(cast(StreamStore, object()), render)
    phone = Connection(UserId("ann"), None, "e", 0)
    tv = Connection(UserId("ann"), None, "e", 1)  # it had the first one already
    for conn in (phone, tv):
        hub.connect(conn)
    entries = [
        Entry(n, UserId("ann"), "e", n, Kind.STATE, {"n": n}, 0.0, origin=origin)
        for n, origin in ((1, None), (2, tv.id), (3, None))
    ]
    await hub.deliver(entries)
    assert calls == [[1, 2, 3]]  # once, for both
    assert [m["id"] for m in await phone.take() if m] == ["e:1", "e:2", "e:3"]
    assert [m["id"] for m in await tv.take() if m] == ["e:3"]  # not its own update (2)
    assert (phone.pos, tv.pos) == (3, 3)


async def test_entries_arriving_while_a_connection_is_caught_up_wait_and_follow_in_order() -> None:
    """Two paths race for one person: a replay from the store (a lost doorbell) holds the
    connection, and meanwhile the next entries arrive. They must not jump ahead of the
    replay, nor be given twice."""
    ann = UserId("ann")
    log = [Entry(n, ann, "e", n, Kind.STATE, {"n": n}, 0.0) for n in (1, 2, 3)]
    store_answers = asyncio.Event()

    class _SlowStore:
        async def replay(self, user: UserId, since: tuple[str, int] | None) -> Replay:
            await store_answers.wait()
            after = since[1] if since else 0
            return Replay(Head("e", 1), [e for e in log[:1] if e.pos > after])

    async def render(user: UserId, entries: Sequence[Entry]) -> list[dict[str, Any] | None]:
        return [{"id": e.position, "type": "state", "data": e.body} for e in entries]

    hub = Hub(cast(StreamStore, _SlowStore()), render)
    phone = Connection(ann, None, "e", 0)
    hub.connect(phone)
    catching_up = asyncio.ensure_future(hub.catch_up({ann: Head("e", 1)}))
    await asyncio.sleep(0)  # the replay holds the connection now
    arriving = asyncio.ensure_future(hub.deliver(log))  # 1 announced late, with 2 and 3
    await asyncio.sleep(0)
    assert phone.pending == []  # they wait behind the replay, though they follow on
    store_answers.set()
    await asyncio.gather(catching_up, arriving)
    await hub.deliver(log[1:])  # announced again (a doorbell twice): nothing doubled
    assert [m["id"] for m in await phone.take() if m] == ["e:1", "e:2", "e:3"]
    assert phone.pos == 3


async def test_single_entries_follow_on_skip_repeats_and_fill_a_gap_from_the_store() -> None:
    """The common delivery, one new entry of a person at a time: it follows on, a repeat
    (a doorbell heard twice) gives nothing, and one past a gap brings what is missing from
    the store first, in order."""
    ann = UserId("ann")
    log = [Entry(n, ann, "e", n, Kind.STATE, {"n": n}, 0.0) for n in (1, 2, 3, 4)]
    asked: list[tuple[str, int] | None] = []

    class _Store:
        async def replay(self, user: UserId, since: tuple[str, int] | None) -> Replay:
            asked.append(since)
            after = since[1] if since else 0
            return Replay(Head("e", 4), [e for e in log if e.pos > after])

    async def render(user: UserId, entries: Sequence[Entry]) -> list[dict[str, Any] | None]:
        return [{"id": e.position, "type": "state", "data": e.body} for e in entries]

    hub = Hub(cast(StreamStore, _Store()), render)
    phone = Connection(ann, None, "e", 0)
    hub.connect(phone)
    await hub.deliver([log[0]])
    await hub.deliver([log[0]])
    assert asked == []  # it followed on, then the repeat was nothing new
    await hub.deliver([log[3]])  # 2 and 3 were missed here
    assert asked == [("e", 1)]
    assert [m["id"] for m in await phone.take() if m] == ["e:1", "e:2", "e:3", "e:4"]
    assert phone.pos == 4
