"""An in-process broker with the same semantics as the durable ones; for tests only."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from clarion.broker.base import DeadLetter, Message, Outbound, Record, settle_in_order
from clarion.clock import Clock


@dataclass(slots=True)
class _Entry:
    id: int
    topic: str
    body: bytes
    available_at: float
    enqueued_at: float
    attempts: int = 0
    lease: int | None = None


class MemoryBroker:
    def __init__(self, clock: Clock, *, lease_s: float = 30.0, max_attempts: int = 5) -> None:
        self._clock = clock
        self.lease_s = lease_s
        self._max_attempts = max_attempts
        self._entries: dict[int, _Entry] = {}
        self._dead: list[DeadLetter] = []
        self._ids = itertools.count(1)
        self._leases = itertools.count(1)
        self._news = asyncio.Event()

    async def publish(self, messages: Sequence[Outbound]) -> None:
        now = self._clock.now()
        for m in messages:
            entry_id = next(self._ids)
            if m.dead_letter is not None:
                self._dead.append(
                    DeadLetter(str(entry_id), m.topic, m.body, 0, m.dead_letter, now, now)
                )
                continue
            self._entries[entry_id] = _Entry(entry_id, m.topic, m.body, now + m.delay_s, now)
        if messages:
            self._news.set()

    async def consume(self, topic: str, *, limit: int) -> list[Message]:
        now = self._clock.now()
        ready = sorted(
            (e for e in self._entries.values() if e.topic == topic and e.available_at <= now),
            key=lambda e: (e.available_at, e.id),
        )[:limit]
        lease = next(self._leases)
        claimed: list[Message] = []
        for entry in ready:
            entry.attempts += 1
            if entry.attempts > self._max_attempts:
                del self._entries[entry.id]
                self._dead.append(
                    DeadLetter(
                        str(entry.id),
                        topic,
                        entry.body,
                        entry.attempts - 1,
                        "handed out too many times without an ack",
                        entry.enqueued_at,
                        now,
                    )
                )
                continue
            entry.available_at = now + self.lease_s
            entry.lease = lease
            claimed.append(
                Message(
                    str(entry.id), topic, entry.body, entry.attempts, entry.enqueued_at, str(lease)
                )
            )
        return claimed

    def _held(self, message: Message) -> _Entry | None:
        entry = self._entries.get(int(message.id))
        if entry is None or entry.lease != int(message.lease):
            return None
        return entry

    async def renew(self, messages: Sequence[Message]) -> None:
        for m in messages:
            entry = self._held(m)
            if entry is not None:
                entry.available_at = self._clock.now() + self.lease_s

    async def ack(self, messages: Sequence[Message]) -> None:
        for m in messages:
            if self._held(m) is not None:
                del self._entries[int(m.id)]

    async def nack(self, message: Message, *, delay_s: float) -> None:
        entry = self._held(message)
        if entry is not None:
            entry.available_at = self._clock.now() + delay_s
            entry.lease = None

    async def dead_letter(self, message: Message, *, error: str) -> None:
        entry = self._held(message)
        if entry is not None:
            del self._entries[entry.id]
            self._dead.append(
                DeadLetter(
                    message.id,
                    message.topic,
                    message.body,
                    message.attempts,
                    error,
                    message.enqueued_at,
                    self._clock.now(),
                )
            )

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        return list(reversed(self._dead))[:limit]

    async def dead_letter_by_id(self, dead_id: str) -> DeadLetter | None:
        return next((d for d in self._dead if d.id == dead_id), None)

    async def replay(self, dead_id: str) -> bool:
        found = await self.dead_letter_by_id(dead_id)
        if found is None:
            return False
        self._dead.remove(found)
        await self.publish([Outbound(found.topic, found.body)])
        return True

    async def purge(self, dead_id: str | None = None) -> int:
        gone = [d for d in self._dead if dead_id is None or d.id == dead_id]
        self._dead = [d for d in self._dead if d not in gone]
        return len(gone)

    async def settle(
        self, messages: Sequence[Message], outbound: Sequence[Outbound], records: Sequence[Record]
    ) -> None:
        await settle_in_order(self, messages, outbound, records)

    async def running_low(self, topic: str, below: int) -> bool:
        now = self._clock.now()
        due = sum(1 for e in self._entries.values() if e.topic == topic and e.available_at <= now)
        return due < below

    async def depth(self, topic: str) -> int:
        return (await self.depths()).get(topic, 0)

    async def depths(self) -> dict[str, int]:
        now = self._clock.now()
        found: dict[str, int] = {}
        for entry in self._entries.values():
            if entry.available_at <= now or entry.lease is not None:
                found[entry.topic] = found.get(entry.topic, 0) + 1
        return found

    async def held(self) -> dict[str, int]:
        now = self._clock.now()
        found: dict[str, int] = {}
        for entry in self._entries.values():
            if entry.available_at > now and entry.lease is None:
                found[entry.topic] = found.get(entry.topic, 0) + 1
        return found

    async def oldest(self, now: float) -> dict[str, float]:
        found: dict[str, float] = {}
        for entry in self._entries.values():
            if entry.available_at <= now or entry.lease is not None:
                found[entry.topic] = min(
                    entry.enqueued_at, found.get(entry.topic, entry.enqueued_at)
                )
        return found

    async def dead_letter_count(self) -> int:
        return len(self._dead)

    async def wait(self, timeout_s: float) -> None:
        self._news.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._news.wait(), timeout_s)

    async def close(self) -> None:
        self._entries.clear()
