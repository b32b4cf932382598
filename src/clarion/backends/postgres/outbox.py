"""The PostgreSQL stores' outbox: ingest's queue messages, committed with their events
(``backends.postgres.stores.events.enqueue``), waiting for ``OutboxRelay`` to move them to Redis.

Claims take rows with ``FOR UPDATE SKIP LOCKED`` under a lease, so relays in many processes
never move the same message at once, and one that dies mid-move leaves its claim to lapse.
A commit that adds messages sends a NOTIFY, which ``version`` turns into a counter so an
idle relay wakes at once instead of polling.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence

from clarion.backends.postgres import PostgresDatabase
from clarion.backends.postgres.stores.events import OUTBOX_CHANNEL
from clarion.broker.base import Message
from clarion.clock import Clock

_CLAIM = """
UPDATE outbox SET lease = $1, attempts = attempts + 1, available_at = $2
WHERE id IN (
    SELECT id FROM outbox WHERE topic = $3 AND available_at <= $4
    ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED
)
RETURNING id, body, attempts, enqueued_at
"""


class PostgresOutbox:
    def __init__(self, db: PostgresDatabase, clock: Clock, *, lease_s: float) -> None:
        self._db = db
        self._clock = clock
        self.lease_s = lease_s
        self._notices = 0
        self._stop_listening: Callable[[], Awaitable[None]] | None = None

    async def ready_topics(self, topics: Sequence[str]) -> set[str]:
        rows = await self._db.fetch(
            "SELECT t FROM unnest($1::text[]) t WHERE EXISTS"
            " (SELECT 1 FROM outbox WHERE topic = t AND available_at <= $2)",
            list(topics),
            self._clock.now(),
        )
        return {r[0] for r in rows}

    async def consume(self, topic: str, *, limit: int) -> list[Message]:
        now = self._clock.now()
        lease = random.getrandbits(62)
        rows = await self._db.fetch(_CLAIM, lease, now + self.lease_s, topic, now, limit)
        return [
            Message(str(r[0]), topic, bytes(r[1]), r[2], r[3], str(lease))
            for r in sorted(rows, key=lambda r: r[0])
        ]

    async def ack(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._db.execute(
                "DELETE FROM outbox o USING unnest($1::bigint[], $2::bigint[]) AS m(id, lease)"
                " WHERE o.id = m.id AND o.lease = m.lease",
                [int(m.id) for m in messages],
                [int(m.lease) for m in messages],
            )

    async def nack(self, message: Message, *, delay_s: float) -> None:
        await self._db.execute(
            "UPDATE outbox SET available_at = $1, lease = NULL WHERE id = $2 AND lease = $3",
            self._clock.now() + delay_s,
            int(message.id),
            int(message.lease),
        )

    async def depth(self, topic: str) -> int:
        return (await self.depths()).get(topic, 0)

    async def depths(self) -> dict[str, int]:
        rows = await self._db.fetch(
            "SELECT topic, count(*) FROM outbox WHERE available_at <= $1 OR lease IS NOT NULL"
            " GROUP BY topic",
            self._clock.now(),
        )
        return {r[0]: int(r[1]) for r in rows}

    async def held(self) -> dict[str, int]:
        rows = await self._db.fetch(
            "SELECT topic, count(*) FROM outbox WHERE available_at > $1 AND lease IS NULL"
            " GROUP BY topic",
            self._clock.now(),
        )
        return {r[0]: int(r[1]) for r in rows}

    async def oldest(self, now: float) -> dict[str, float]:
        rows = await self._db.fetch(
            "SELECT topic, min(enqueued_at) FROM outbox WHERE available_at <= $1"
            " OR lease IS NOT NULL GROUP BY topic",
            now,
        )
        return {r[0]: float(r[1]) for r in rows}

    async def version(self) -> int:
        """Changes whenever a commit may have added messages."""
        if self._stop_listening is None:
            self._stop_listening = await self._db.listen(OUTBOX_CHANNEL, self._noticed)
        return self._notices + self._db.outbox_commits

    def _noticed(self, *_: object) -> None:
        self._notices += 1

    async def close(self) -> None:
        if self._stop_listening is not None:
            await self._stop_listening()
            self._stop_listening = None
