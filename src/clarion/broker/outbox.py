"""Redis queues with a database store: the store keeps a transactional outbox.

Ingest commits an event and its first queue message in one store transaction (a 202 always
has its message; an error never leaves one behind). Redis cannot join that transaction,
so with a Redis broker those messages still commit into the store (SQLite's ``queue``
table, PostgreSQL's ``outbox``) and are moved to Redis by whichever worker next looks at
that topic: claim them in the outbox, publish them to Redis, ack them in the outbox. A
crash between the publish and the ack publishes them again when the outbox lease runs
out; the pipeline's dedup makes that harmless. Nothing is lost, because nothing leaves the
outbox before Redis has it.

Streams are bounded without dropping anything: the relay moves a topic's messages only
while its stream holds fewer than ``max_stream_len``; beyond that the backlog waits in the
durable outbox, not in Redis's memory (and still counts in ``depths``, so load shedding
sees it). The pipeline's own publishes go straight to Redis; what bounds them is the
fan-out pausing while evaluation is behind (``resilience.load``).

Everything else (the pipeline's own publishes, leases, dead letters, depths) is Redis's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from clarion.backends.redis.broker import RedisBroker
from clarion.broker.base import DeadLetter, Message, Outbound, Record, settle_in_order
from clarion.topics import ALL_TOPICS

_RELAY_LIMIT = 1000
_LOOK_S = 0.25
_WAIT_SLICE_S = 0.005


class Outbox(Protocol):
    """Where a store keeps ingest's messages until Redis has them."""

    async def ready_topics(self, topics: Sequence[str]) -> set[str]:
        """Those of ``topics`` with a message to hand out now."""
        ...

    async def consume(self, topic: str, *, limit: int) -> list[Message]: ...
    async def ack(self, messages: Sequence[Message]) -> None: ...
    async def nack(self, message: Message, *, delay_s: float) -> None: ...
    async def depth(self, topic: str) -> int: ...
    async def depths(self) -> dict[str, int]: ...
    async def held(self) -> dict[str, int]: ...
    async def oldest(self, now: float) -> dict[str, float]: ...

    async def version(self) -> int:
        """Changes whenever a commit may have added messages (a cheap "news?" probe)."""
        ...

    async def close(self) -> None: ...


class OutboxRelay:
    def __init__(
        self, outbox: Outbox, broker: RedisBroker, *, max_stream_len: int = 100_000
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._max_stream_len = max_stream_len
        self.lease_s = broker.lease_s
        self._ready: set[str] = set()
        self._looked: tuple[int, float] | None = None

    async def _has_ready(self, topic: str) -> bool:
        """Whether the outbox has ``topic`` messages to move. Workers ask for every topic on
        every round; the outbox is asked once for all of them, again only after a commit
        that may have added some (its ``version``) or a moment later (delayed ones come
        due). A round trip per topic per round to a remote store was, measured, the
        ingest benchmark's bottleneck: idle workers woken by every commit."""
        # The broker's clock, not the machine's: a delayed message comes due on it.
        version, now = await self._outbox.version(), self._broker.clock.now()
        if self._looked is None or self._looked[0] != version or now - self._looked[1] > _LOOK_S:
            self._ready = await self._outbox.ready_topics(ALL_TOPICS)
            self._looked = (version, now)
        return topic in self._ready

    async def relay(self, topic: str) -> int:
        """Move ``topic``'s committed outbox messages to Redis while its stream has room;
        returns how many moved."""
        if not await self._has_ready(topic):
            return 0
        room = self._max_stream_len - await self._broker.depth(topic)
        if room <= 0:
            return 0
        limit = min(room, _RELAY_LIMIT)
        pending = await self._outbox.consume(topic, limit=limit)
        if len(pending) < limit:
            self._ready.discard(topic)  # drained (until the next commit says otherwise)
        if not pending:
            return 0
        try:
            await self._broker.publish([Outbound(m.topic, m.body) for m in pending])
        except BaseException:
            for m in pending:  # Redis is away: leave them for the next look, not the lease
                await self._outbox.nack(m, delay_s=0.5)
            raise
        await self._outbox.ack(pending)
        return len(pending)

    async def publish(self, messages: Sequence[Outbound]) -> None:
        await self._broker.publish(messages)

    async def consume(self, topic: str, *, limit: int) -> list[Message]:
        await self.relay(topic)
        return await self._broker.consume(topic, limit=limit)

    async def renew(self, messages: Sequence[Message]) -> None:
        await self._broker.renew(messages)

    async def settle(
        self, messages: Sequence[Message], outbound: Sequence[Outbound], records: Sequence[Record]
    ) -> None:
        await settle_in_order(self, messages, outbound, records)

    async def running_low(self, topic: str, below: int) -> bool:
        return await self._broker.running_low(topic, below)

    async def ack(self, messages: Sequence[Message]) -> None:
        await self._broker.ack(messages)

    async def nack(self, message: Message, *, delay_s: float) -> None:
        await self._broker.nack(message, delay_s=delay_s)

    async def dead_letter(self, message: Message, *, error: str) -> None:
        await self._broker.dead_letter(message, error=error)

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        return await self._broker.dead_letters(limit=limit)

    async def dead_letter_by_id(self, dead_id: str) -> DeadLetter | None:
        return await self._broker.dead_letter_by_id(dead_id)

    async def replay(self, dead_id: str) -> bool:
        return await self._broker.replay(dead_id)

    async def purge(self, dead_id: str | None = None) -> int:
        return await self._broker.purge(dead_id)

    async def depths(self) -> dict[str, int]:
        found = await self._broker.depths()
        for topic, waiting in (await self._outbox.depths()).items():
            found[topic] = found.get(topic, 0) + waiting
        return found

    async def depth(self, topic: str) -> int:
        return await self._broker.depth(topic) + await self._outbox.depth(topic)

    async def held(self) -> dict[str, int]:
        found = await self._broker.held()
        for topic, waiting in (await self._outbox.held()).items():
            found[topic] = found.get(topic, 0) + waiting
        return found

    async def oldest(self, now: float) -> dict[str, float]:
        found = await self._broker.oldest(now)
        for topic, at in (await self._outbox.oldest(now)).items():
            found[topic] = min(at, found.get(topic, at))
        return found

    async def dead_letter_count(self) -> int:
        return await self._broker.dead_letter_count()

    async def wait(self, timeout_s: float) -> None:
        """Until Redis announces a publish or the store commits (maybe an outbox message)."""
        deadline = time.monotonic() + timeout_s
        version = await self._outbox.version()
        while (remaining := deadline - time.monotonic()) > 0:
            if await self._broker.news(min(remaining, _WAIT_SLICE_S)):
                return
            if await self._outbox.version() != version:
                return

    async def ping(self) -> None:
        await self._broker.ping()

    async def close(self) -> None:
        await self._outbox.close()
        await self._broker.close()
