"""This process's open device connections, and how stream entries reach them.

Every connection remembers the last position it was given. An entry for its person goes
to it when it is the next one; an entry further ahead means something was missed here (a
doorbell lost, a connection just caught up), so the connection catches up from the store
first — in order, never skipping. A connection whose device reads too slowly to keep up
is closed with a reason rather than left to grow this process's memory.

Entries arrive from the feed (``live.feed``: what other processes appended) and from this
process itself (``publish``, right after its own commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clarion import metrics
from clarion.live.log import Entry, Head, Kind
from clarion.stores.base import StreamStore
from clarion.types import UserId

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1_000
"""Messages waiting for one slow device before it is cut off."""
HEARTBEAT_S = 15.0
"""A connection quiet this long gets a heartbeat, so proxies keep it open."""

Render = Callable[[UserId, Sequence[Entry]], Awaitable[list[dict[str, Any] | None]]]
"""Entries of one person → the messages their devices get (``live.render``)."""
Message = dict[str, Any] | None
"""What a connection writes next; None: the hub closed it (``Connection.closed`` says why)."""
Sink = Callable[[dict[str, Any]], bool]
"""Writes a message to the device at once if it can; False if not now (it then queues)."""


@dataclass(eq=False)
class Connection:
    """One open SSE stream or WebSocket of one device.

    Its messages wait in a plain list and its writer sleeps on one future: a connection
    hears a message every few hundred milliseconds at 15,000 updates/s, and an
    ``asyncio.Queue`` read under ``wait_for`` (a task and a timer per message) was a tenth
    of the server's time. Heartbeats come from the hub's one timer instead."""

    user_id: UserId
    device_id: str | None
    epoch: str
    pos: int
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    pending: list[Message] = field(default_factory=list)
    closed: str | None = None
    """Why the hub closed it (a slow reader): the last message it gets says so."""
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while the hub gives this connection something: one catch-up or delivery at a
    time, so positions only move forward in order."""
    wrote_at: float = field(default_factory=time.monotonic)
    sink: Sink | None = None
    """Set by a stream that can write without its writer task (``routes.stream``): while
    nothing is queued, a message goes straight to the socket. Waking the writer for each
    message (a future, a task step, the server's ``send``) cost about a fifth of the API's
    CPU at 30,000 messages a second (1.13 to 1.40 cores against 0.90 to 1.09 without it)."""
    _waiter: asyncio.Future[None] | None = None

    def give(self, message: dict[str, Any]) -> bool:
        """Write or queue ``message``; False (and the connection is closed) if it is too
        far behind."""
        if self.closed is not None:
            return False
        if not self.pending and self.sink is not None and self.sink(message):
            return True
        if len(self.pending) >= QUEUE_LIMIT:
            self.close("too slow: the device is not reading its stream; reconnect")
            return False
        self.pending.append(message)
        self.wake()
        return True

    def close(self, reason: str) -> None:
        """End it: its writer gets None (after nothing else) and says ``reason``."""
        if self.closed is None:
            self.closed = reason
            self.pending = [None]
            self.wake()

    def wake(self) -> None:
        """Let the writer run: it has messages, or it is time for a heartbeat."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> list[Message]:
        """Everything waiting, in order (ending with None if the hub closed the
        connection); an empty list when woken for a heartbeat."""
        if not self.pending:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        taken, self.pending = self.pending, []
        self.wrote_at = time.monotonic()
        return taken


class Hub:
    def __init__(self, streams: StreamStore, render: Render) -> None:
        self._streams = streams
        self._render = render
        self._by_user: dict[UserId, set[Connection]] = {}

    @property
    def connections(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    def people(self) -> list[UserId]:
        return list(self._by_user)

    def connections_of(self, user: UserId) -> list[Connection]:
        return list(self._by_user.get(user, ()))

    def connect(self, conn: Connection) -> None:
        self._by_user.setdefault(conn.user_id, set()).add(conn)
        metrics.metrics().open_streams.inc()

    def disconnect(self, conn: Connection) -> None:
        found = self._by_user.get(conn.user_id)
        if found is not None and conn in found:
            found.discard(conn)
            metrics.metrics().open_streams.dec()
            if not found:
                del self._by_user[conn.user_id]

    async def heartbeats(self, stop: asyncio.Event, every_s: float = HEARTBEAT_S) -> None:
        """Until ``stop``: wake each connection about to be quiet for ``every_s`` (its
        writer sends a heartbeat). One timer for all of them, four ticks a period, so no
        connection is quiet for longer than ``every_s``."""
        tick = every_s / 4
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)
            quiet_since = time.monotonic() - every_s + tick
            for conns in self._by_user.values():
                for conn in conns:
                    if conn.wrote_at <= quiet_since:
                        conn.wake()

    async def deliver(self, entries: Sequence[Entry]) -> None:
        """Give each connected person's connections the entries that are theirs."""
        mine: dict[UserId, list[Entry]] = {}
        for entry in entries:
            if entry.user_id in self._by_user:
                mine.setdefault(entry.user_id, []).append(entry)
        for user, theirs in mine.items():
            if len(theirs) > 1:
                theirs.sort(key=lambda e: e.pos)
            once = _RenderedOnce(self._render, user, theirs)
            messages = await once.all()
            for conn in self.connections_of(user):
                fresh = _continuing(conn, theirs)
                if fresh is None or conn.busy.locked():
                    await self._advance(conn, theirs, once)
                else:
                    # The common case, with no await from the check to the hand-over: the
                    # entries follow on from where the connection is, and nothing else is
                    # giving it anything (a lock and three coroutines per message were a
                    # twentieth of the API's time at 15,000 updates/s).
                    self._give(conn, fresh, messages[len(messages) - len(fresh) :])

    async def catch_up(self, heads: dict[UserId, Head]) -> None:
        """Bring connections behind their person's head up to it (a lost doorbell)."""
        for user, head in heads.items():
            for conn in self.connections_of(user):
                if _behind(conn, head):
                    async with conn.busy:
                        if _behind(conn, head):  # not caught up while it waited
                            await self._fill(conn)

    async def _advance(self, conn: Connection, entries: list[Entry], once: _RenderedOnce) -> None:
        async with conn.busy:
            if _continuing(conn, entries) is None:
                await self._fill(conn)  # something in between is missing here: from the store
                return
            await self.send(conn, entries, once)

    async def _fill(self, conn: Connection) -> None:
        replay = await self._streams.replay(conn.user_id, (conn.epoch, conn.pos))
        if replay.reset is not None:
            conn.epoch, conn.pos = replay.head.epoch, replay.head.pos
            conn.give(reset_message(replay.head, replay.reset))
            return
        await self.send(conn, replay.entries)

    async def send(
        self, conn: Connection, entries: Sequence[Entry], once: _RenderedOnce | None = None
    ) -> None:
        """Give ``conn`` the entries past its position, in order (its lock is held)."""
        fresh = [e for e in entries if e.pos > conn.pos]
        if not fresh:
            return
        if once is not None:
            messages = await once.tail(fresh)
        else:
            messages = await self._render(conn.user_id, fresh)
        self._give(conn, fresh, messages)

    def _give(self, conn: Connection, fresh: Sequence[Entry], messages: Sequence[Message]) -> None:
        for entry, message in zip(fresh, messages, strict=True):
            conn.pos = entry.pos
            if entry.origin == conn.id or message is None:
                continue  # the device's own update (it knows), or one a newer replaces
            if not conn.give(message):
                log.info("closing a stream of %s: %s", conn.user_id, conn.closed)
                self.disconnect(conn)
                return


def _behind(conn: Connection, head: Head) -> bool:
    return conn.epoch != head.epoch or conn.pos < head.pos


def _continuing(conn: Connection, entries: list[Entry]) -> list[Entry] | None:
    """Those of one person's ``entries`` (in order) past the connection's position, if they
    follow on from it without a gap; None if something in between is missing here."""
    if len(entries) == 1:  # the common case: one new entry of the person
        entry = entries[0]
        if entry.epoch != conn.epoch or entry.pos > conn.pos + 1:
            return None
        return entries if entry.pos == conn.pos + 1 else []
    ahead = [e for e in entries if e.epoch != conn.epoch or e.pos > conn.pos]
    expected = range(conn.pos + 1, conn.pos + 1 + len(ahead))
    if any(e.epoch != conn.epoch or e.pos != n for e, n in zip(ahead, expected, strict=True)):
        return None
    return ahead


def reset_message(head: Head, reason: str) -> dict[str, Any]:
    """Refetch everything, then resume from ``head`` (the message's position)."""
    return {"id": f"{head.epoch}:{head.pos}", "type": Kind.RESET.value, "data": {"reason": reason}}


class _RenderedOnce:
    """One person's new entries made into messages once for all their connections (a
    person has a phone, a TV, a laptop). A connection gets the tail it has not had yet:
    a tail of the same entries, so latest-wins collapse decides the same for it."""

    def __init__(self, render: Render, user: UserId, entries: list[Entry]) -> None:
        self._render = render
        self._user = user
        self._entries = entries
        self._messages: list[Message] | None = None

    async def all(self) -> list[Message]:
        if self._messages is None:
            self._messages = await self._render(self._user, self._entries)
        return self._messages

    async def tail(self, fresh: list[Entry]) -> list[Message]:
        entries, n = self._entries, len(fresh)
        if n > len(entries) or fresh[0] is not entries[-n]:
            return await self._render(self._user, fresh)  # not a tail of these: its own
        return (await self.all())[-n:]
