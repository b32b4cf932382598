"""The embedded broker: every queue is rows of one table in the shared SQLite file.

A claim is one ``UPDATE … RETURNING`` inside ``BEGIN IMMEDIATE``: it pushes the rows'
``available_at`` past the lease and stamps them with a lease number, so the claim is atomic
across processes. Rows are deleted only on ack (never on read), so a crash loses nothing.
Because the queue lives in the same file as the stores, ``enqueue`` can also run inside a
store's own transaction (the ingest path uses this: an event row and its queue message
commit together or not at all).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from clarion.backends.sqlite import SqliteDatabase
from clarion.broker.base import DeadLetter, Message, Outbound, Record
from clarion.clock import Clock

_CLAIM = """
UPDATE queue SET available_at = ?, attempts = attempts + 1, lease = ?
WHERE id IN (
    SELECT id FROM queue WHERE topic = ? AND available_at <= ?
    ORDER BY available_at LIMIT ?
)
RETURNING id, attempts, enqueued_at, body
"""

_WAIT_POLL_S = 0.002
_DEAD_COLUMNS = "id, topic, body, attempts, error, enqueued_at, failed_at"


def _dead(row: tuple[Any, ...]) -> DeadLetter:
    return DeadLetter(str(row[0]), row[1], bytes(row[2]), row[3], row[4], row[5], row[6])


def _int(dead_id: str) -> int:
    """Dead-letter ids are integers here; anything else names no letter."""
    return int(dead_id) if dead_id.isdigit() else -1


class SqliteBroker:
    def __init__(
        self, db: SqliteDatabase, clock: Clock, *, lease_s: float = 30.0, max_attempts: int = 5
    ) -> None:
        self._db = db
        self._clock = clock
        self.lease_s = lease_s
        self._max_attempts = max_attempts

    @staticmethod
    def enqueue(conn: sqlite3.Connection, messages: Sequence[Outbound], now: float) -> None:
        """Insert ``messages`` inside the caller's open transaction."""
        conn.executemany(
            "INSERT INTO queue (topic, available_at, enqueued_at, body) VALUES (?, ?, ?, ?)",
            [(m.topic, now + m.delay_s, now, m.body) for m in messages if m.dead_letter is None],
        )
        buried = [m for m in messages if m.dead_letter is not None]
        if buried:
            conn.executemany(
                "INSERT INTO dead_letters (topic, body, attempts, error, enqueued_at,"
                " failed_at) VALUES (?, ?, 0, ?, ?, ?)",
                [(m.topic, m.body, m.dead_letter, now, now) for m in buried],
            )

    async def publish(self, messages: Sequence[Outbound]) -> None:
        if not messages:
            return
        now = self._clock.now()
        await self._db.write(lambda conn: self.enqueue(conn, messages, now))

    async def ready(self, topic: str) -> bool:
        """Whether ``topic`` has a message to hand out now (a WAL read: no write lock)."""
        now = self._clock.now()
        found = await self._db.read(
            lambda c: c.execute(
                "SELECT 1 FROM queue WHERE topic = ? AND available_at <= ? LIMIT 1", (topic, now)
            ).fetchone()
        )
        return found is not None

    async def ready_topics(self, topics: Sequence[str]) -> set[str]:
        """Those of ``topics`` with a message to hand out now (local reads, one each)."""
        return {t for t in topics if await self.ready(t)}

    async def consume(self, topic: str, *, limit: int) -> list[Message]:
        # Looking is free; claiming takes the write lock, so only claim when there is
        # something to claim.
        if not await self.ready(topic):
            return []
        now = self._clock.now()
        lease = random.getrandbits(62)
        return await self._db.write(lambda conn: self._claim(conn, topic, limit, now, lease))

    def _claim(
        self, conn: sqlite3.Connection, topic: str, limit: int, now: float, lease: int
    ) -> list[Message]:
        rows = conn.execute(_CLAIM, (now + self.lease_s, lease, topic, now, limit)).fetchall()
        rows.sort(key=lambda r: r[0])
        spent = [r for r in rows if r[1] > self._max_attempts]
        if spent:
            error = f"handed out {self._max_attempts} times without an ack (did its worker die?)"
            conn.executemany(
                "INSERT INTO dead_letters (topic, body, attempts, error, enqueued_at, failed_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(topic, r[3], r[1] - 1, error, r[2], now) for r in spent],
            )
            conn.executemany("DELETE FROM queue WHERE id = ?", [(r[0],) for r in spent])
        return [
            Message(
                id=str(r[0]),
                topic=topic,
                body=r[3],
                attempts=r[1],
                enqueued_at=r[2],
                lease=str(lease),
            )
            for r in rows
            if r[1] <= self._max_attempts
        ]

    async def renew(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        until = self._clock.now() + self.lease_s
        params = [(until, int(m.id), int(m.lease)) for m in messages]
        await self._db.write(
            lambda c: c.executemany(
                "UPDATE queue SET available_at = ? WHERE id = ? AND lease = ?", params
            )
        )

    async def ack(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        params = [(int(m.id), int(m.lease)) for m in messages]
        await self._db.write(
            lambda c: c.executemany("DELETE FROM queue WHERE id = ? AND lease = ?", params)
        )

    async def nack(self, message: Message, *, delay_s: float) -> None:
        available_at = self._clock.now() + delay_s
        await self._db.write(
            lambda c: c.execute(
                "UPDATE queue SET available_at = ?, lease = NULL WHERE id = ? AND lease = ?",
                (available_at, int(message.id), int(message.lease)),
            )
        )

    async def dead_letter(self, message: Message, *, error: str) -> None:
        now = self._clock.now()

        def _move(conn: sqlite3.Connection) -> None:
            gone = conn.execute(
                "DELETE FROM queue WHERE id = ? AND lease = ?",
                (int(message.id), int(message.lease)),
            ).rowcount
            if gone:
                conn.execute(
                    "INSERT INTO dead_letters (topic, body, attempts, error, enqueued_at,"
                    " failed_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        message.topic,
                        message.body,
                        message.attempts,
                        error,
                        message.enqueued_at,
                        now,
                    ),
                )

        await self._db.write(_move)

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_DEAD_COLUMNS} FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [_dead(r) for r in rows]

    async def dead_letter_by_id(self, dead_id: str) -> DeadLetter | None:
        row = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_DEAD_COLUMNS} FROM dead_letters WHERE id = ?", (_int(dead_id),)
            ).fetchone()
        )
        return None if row is None else _dead(row)

    async def replay(self, dead_id: str) -> bool:
        now = self._clock.now()

        def _replay(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "DELETE FROM dead_letters WHERE id = ? RETURNING topic, body", (_int(dead_id),)
            ).fetchone()
            if row is not None:
                self.enqueue(conn, [Outbound(row[0], row[1])], now)
            return row is not None

        return await self._db.write(_replay)

    async def purge(self, dead_id: str | None = None) -> int:
        if dead_id is None:
            return await self._db.write(lambda c: c.execute("DELETE FROM dead_letters").rowcount)
        return await self._db.write(
            lambda c: c.execute("DELETE FROM dead_letters WHERE id = ?", (_int(dead_id),)).rowcount
        )

    async def settle(
        self, messages: Sequence[Message], outbound: Sequence[Outbound], records: Sequence[Record]
    ) -> None:
        """The publish joins the first record's commit and the ack the last's: two fewer
        turns at the write lock per claim (under a fan-out each worker waited for it about
        a fifth of the time). Each record keeps a commit of its own otherwise, so none
        holds the lock longer than before (``evaluate._RECIPIENTS_PER_COMMIT``)."""
        last = max(len(records) - 1, 0)
        for i in range(last + 1):
            async with self._db.together():
                if i == 0:
                    await self.publish(outbound)
                if records:
                    await records[i]()
                if i == last:
                    await self.ack(messages)

    async def running_low(self, topic: str, below: int) -> bool:
        now = self._clock.now()
        row = await self._db.read(
            lambda c: c.execute(
                # At most ``below`` index entries read, however many are held for later.
                "SELECT count(*) FROM (SELECT 1 FROM queue WHERE topic = ? AND available_at <= ?"
                " LIMIT ?)",
                (topic, now, below),
            ).fetchone()
        )
        return int(row[0]) < below

    async def depth(self, topic: str) -> int:
        now = self._clock.now()
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT count(*) FROM queue WHERE topic = ? AND (available_at <= ?"
                " OR lease IS NOT NULL)",
                (topic, now),
            ).fetchone()
        )
        return int(row[0])

    async def depths(self) -> dict[str, int]:
        now = self._clock.now()
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT topic, count(*) FROM queue WHERE available_at <= ? OR lease IS NOT NULL"
                " GROUP BY topic",
                (now,),
            ).fetchall()
        )
        return {topic: int(count) for topic, count in rows}

    async def held(self) -> dict[str, int]:
        now = self._clock.now()
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT topic, count(*) FROM queue WHERE available_at > ? AND lease IS NULL"
                " GROUP BY topic",
                (now,),
            ).fetchall()
        )
        return {topic: int(count) for topic, count in rows}

    async def oldest(self, now: float) -> dict[str, float]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT topic, min(enqueued_at) FROM queue"
                " WHERE available_at <= ? OR lease IS NOT NULL GROUP BY topic",
                (now,),
            ).fetchall()
        )
        return {topic: float(at) for topic, at in rows}

    async def dead_letter_count(self) -> int:
        row = await self._db.read(
            lambda c: c.execute("SELECT count(*) FROM dead_letters").fetchone()
        )
        return int(row[0])

    async def wait(self, timeout_s: float) -> None:
        # Another process's commit changes PRAGMA data_version; polling it costs microseconds.
        deadline = time.monotonic() + timeout_s
        start = self._db.data_version()
        while time.monotonic() < deadline:
            await asyncio.sleep(_WAIT_POLL_S)
            if self._db.data_version() != start:
                return

    async def version(self) -> int:
        """Changes whenever anybody commits: another connection (``PRAGMA data_version``)
        or this one."""
        return self._db.data_version() + self._db.own_changes()

    async def close(self) -> None:
        """The database handle belongs to the runtime, which closes it."""
