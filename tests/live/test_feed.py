"""The scale-out feed's once-a-second check (``live.feed.RedisFeed``): what a lost
announcement left out is caught up from the store; what is merely on its way is not
replayed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aioredis

from clarion.live.feed import RedisFeed
from clarion.live.hub import Connection, Hub
from clarion.live.log import Entry, Head, Kind, Replay
from clarion.stores.base import StreamStore
from clarion.types import UserId

ANN = UserId("ann")


class _Log:
    """One person's stream, as the store has it; counts the replays asked of it."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.replays = 0

    def commit(self) -> Entry:
        n = len(self.entries) + 1
        self.entries.append(Entry(n, ANN, "e", n, Kind.STATE, {"n": n}, 0.0))
        return self.entries[-1]

    async def heads(self, users: Sequence[UserId]) -> dict[UserId, Head]:
        return {u: Head("e", len(self.entries)) for u in users if u == ANN}

    async def replay(self, user: UserId, since: tuple[str, int] | None) -> Replay:
        self.replays += 1
        after = since[1] if since else len(self.entries)
        return Replay(Head("e", len(self.entries)), [e for e in self.entries if e.pos > after])


async def _render(user: UserId, entries: Sequence[Entry]) -> list[dict[str, Any] | None]:
    return [{"id": e.position, "type": "state", "data": e.body} for e in entries]


def _feed() -> tuple[RedisFeed, Hub, _Log, Connection]:
    log = _Log()
    hub = Hub(cast(StreamStore, log), _render)
    phone = Connection(ANN, None, "e", 0)
    hub.connect(phone)
    # The check reads the store, never Redis.
    return RedisFeed(cast(aioredis.Redis, None), cast(StreamStore, log), hub), hub, log, phone


async def test_an_update_committed_but_not_yet_announced_is_not_replayed() -> None:
    feed, hub, log, phone = _feed()
    await feed._check()
    on_its_way = log.commit()
    await feed._check()  # a second later: its announcement is still on its way
    await hub.deliver([on_its_way])  # and here it is
    await feed._check()
    assert log.replays == 0
    assert [m["id"] for m in await phone.take() if m] == ["e:1"]


async def test_what_a_lost_announcement_left_out_is_caught_up_at_the_next_check() -> None:
    feed, _, log, phone = _feed()
    log.commit()  # never announced
    await feed._check()
    assert log.replays == 0  # it may still be on its way
    await feed._check()  # a second on: it is not
    assert log.replays == 1
    assert [m["id"] for m in await phone.take() if m] == ["e:1"]
    await feed._check()
    assert log.replays == 1  # caught up: nothing more to do
