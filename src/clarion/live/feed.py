"""How an API process hears of stream entries other processes appended.

* Embedded (``SqliteFeed``): through the shared SQLite file. It has one writer at a time,
  so ids commit in order; the process polls ``id > last`` whenever the file changed (its
  ``data_version``, a free check), every few milliseconds.
* Scale-out (``RedisFeed``): writers announce what they appended on a Redis channel right
  after their commit (``announce``); every process subscribes. Announcements are a doorbell,
  not the record: once a second each process compares what its people's connections have
  with their heads in the store a second before, and catches up from the store what a
  lost announcement (a Redis blip) left out, within two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Sequence
from typing import Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores.live import SqliteStreamStore
from clarion.live.hub import Hub
from clarion.live.log import Entry, Head, Kind
from clarion.stores.base import StreamStore
from clarion.types import UserId

log = logging.getLogger(__name__)

CHANNEL = "clarion:live"
POLL_S = 0.005
CHECK_S = 1.0
"""How often a Redis-fed process checks its people's heads for what it did not hear."""
_PAGE = 5_000


class Feed(Protocol):
    async def run(self, stop: asyncio.Event) -> None:
        """Hand the hub every new entry until ``stop`` is set."""
        ...

    async def announce(self, entries: Sequence[Entry]) -> None:
        """Tell the other processes about ``entries`` (appended and committed here)."""
        ...


class SqliteFeed:
    def __init__(self, streams: SqliteStreamStore, db: SqliteDatabase, hub: Hub) -> None:
        self._streams = streams
        self._db = db
        self._hub = hub
        self._own: set[int] = set()
        """Ids this process appended and gave its hub already: not read back."""

    async def run(self, stop: asyncio.Event) -> None:
        after = await self._streams.last_id()
        seen: tuple[int, int] | None = None
        while not stop.is_set():
            try:
                # Another connection's commit, or this one's (a worker in the process).
                version = (self._db.data_version(), self._db.own_changes())
                if version != seen:
                    seen = version
                    after = await self._follow(after)
            except sqlite3.ProgrammingError:
                return  # the database was closed under us: the process is stopping
            except Exception:  # a device's stream must not stop everyone's
                log.exception("live feed: delivering from the file failed; going on")
            await asyncio.sleep(POLL_S)

    async def _follow(self, after: int) -> int:
        own = self._own
        while True:
            while after + 1 in own:  # nobody else wrote in between: nothing to read
                own.discard(after + 1)
                after += 1
            last, theirs = await self._streams.feed(after, _PAGE, skip=own)
            read = last - after  # ids the page spanned: at least the rows it held
            if read:
                own.difference_update(range(after + 1, last + 1))
                after = last
                await self._hub.deliver(theirs)
            if read < _PAGE:
                if len(own) > _PAGE:  # ids read before they were announced: forget them
                    self._own = {i for i in own if i > after}
                return after

    async def announce(self, entries: Sequence[Entry]) -> None:
        """The other processes read the file; this one need not read these back."""
        self._own.update(e.id for e in entries)


class RedisFeed:
    def __init__(self, client: aioredis.Redis, streams: StreamStore, hub: Hub) -> None:
        self._redis = client
        self._streams = streams
        self._hub = hub
        self._heads: dict[UserId, Head] = {}
        """The heads of this process's people at the previous check."""

    async def run(self, stop: asyncio.Event) -> None:
        checked = time.monotonic()
        while not stop.is_set():
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as channel:
                    await channel.subscribe(CHANNEL)
                    while not stop.is_set():
                        message = await channel.get_message(timeout=0.2)
                        if message is not None:
                            await self._safely(self._hub.deliver(_entries(message["data"])))
                        if time.monotonic() - checked >= CHECK_S:
                            checked = time.monotonic()
                            await self._safely(self._check())
            except (RedisError, OSError) as exc:
                log.warning("live feed: Redis unavailable (%s); checking the store meanwhile", exc)
                await self._check()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), CHECK_S)

    async def _safely(self, work: Awaitable[None]) -> None:
        try:
            await work
        except (RedisError, OSError):
            raise
        except Exception:  # a device's stream must not stop everyone's
            log.exception("live feed: delivering failed; going on")

    async def _check(self) -> None:
        """Catch up the connections still behind where their person's stream stood at the
        previous check, a second ago: those missed an announcement. Against the heads of
        this very moment, every connection whose update was committed but not yet
        announced looked behind too; at 15,000 updates a second that was thousands of
        replays one after another, each holding its connection's lock, and deliveries
        stalled for seconds behind them."""
        people = self._hub.people()
        heads = await self._streams.heads(people) if people else {}
        settled, self._heads = self._heads, heads
        if settled:
            await self._hub.catch_up(settled)

    async def announce(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        try:
            await self._redis.publish(CHANNEL, encode(entries))
        except RedisError as exc:  # the others catch up from the store within a second
            log.warning("live feed: could not announce %d entries: %s", len(entries), exc)


def encode(entries: Sequence[Entry]) -> bytes:
    return orjson.dumps(
        [
            [e.id, e.user_id, e.epoch, e.pos, e.kind.value, e.body, e.at, e.origin, e.critical]
            for e in entries
        ]
    )


def _entries(raw: bytes) -> list[Entry]:
    return [
        Entry(int(i), UserId(u), ep, int(p), Kind(k), b, float(at), o, bool(c))
        for i, u, ep, p, k, b, at, o, c in orjson.loads(raw)
    ]
