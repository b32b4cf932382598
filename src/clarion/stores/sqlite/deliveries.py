"""Recording what evaluation decided: inbox entries, the delivery log and event progress.

One transaction per call, whatever the number of batches in it. A batch is recorded at most
once: its ``(seq, batch_key)`` row is inserted first and, if it was already there (a
redelivered batch), the whole batch is skipped. The in-app entries and their log rows are
written with ``INSERT … SELECT FROM json_each`` so SQLite, not Python, loops over the users.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.models import Channel, Outcome
from clarion.sqlite import SqliteDatabase
from clarion.stores.base import BatchResult, DeliveryRecord
from clarion.types import EventId, Seq, UserId

_PROGRESS = """
UPDATE events SET
    batches_done = batches_done + :batches,
    delivered = delivered + :delivered,
    suppressed = suppressed + :suppressed,
    first_delivery_at = CASE WHEN :delivered > 0 THEN coalesce(first_delivery_at, :now)
        ELSE first_delivery_at END,
    state = CASE
        WHEN state != 'failed' AND batches_total IS NOT NULL
             AND batches_done + :batches >= batches_total THEN 'completed'
        ELSE state END,
    completed_at = CASE
        WHEN completed_at IS NULL AND batches_total IS NOT NULL
             AND batches_done + :batches >= batches_total THEN :now
        ELSE completed_at END
WHERE seq = :seq
"""

_INBOX = "INSERT OR IGNORE INTO inbox (user_id, seq) SELECT value, ? FROM json_each(?)"
_INBOX_LOG = (
    "INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, reason, at)"
    f" SELECT value, ?, '{Channel.IN_APP.value}', 1, '{Outcome.DELIVERED.value}', NULL, ?"
    " FROM json_each(?)"
)
_LOG = (
    "INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, reason, at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SqliteDeliveryStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def record_batches(self, results: Sequence[BatchResult], worker: str, now: float) -> int:
        if not results:
            return 0
        return await self._db.write(lambda c: _record(c, results, worker, now))

    async def recorded(self, keys: Sequence[tuple[Seq, str]]) -> set[tuple[Seq, str]]:
        if not keys:
            return set()
        wanted = orjson.dumps([[seq, key] for seq, key in keys])
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT b.seq, b.batch_key FROM json_each(?) j JOIN batches b"
                " ON b.seq = j.value ->> 0 AND b.batch_key = j.value ->> 1",
                (wanted,),
            ).fetchall()
        )
        return {(Seq(r[0]), r[1]) for r in rows}

    async def for_user(
        self, user_id: UserId, *, event_id: EventId | None, limit: int
    ) -> list[DeliveryRecord]:
        sql = (
            "SELECT e.event_id, d.user_id, d.channel, d.attempt, d.outcome, d.reason, d.at"
            " FROM deliveries d JOIN events e ON e.seq = d.seq WHERE d.user_id = ?"
        )
        params: tuple[object, ...] = (user_id,)
        if event_id is not None:
            sql += " AND d.seq = (SELECT seq FROM events WHERE event_id = ?)"
            params += (event_id,)
        sql += " ORDER BY d.seq DESC, d.id DESC LIMIT ?"
        rows = await self._db.read(lambda c: c.execute(sql, (*params, limit)).fetchall())
        return [DeliveryRecord(EventId(r[0]), UserId(r[1]), *r[2:]) for r in rows]


def _record(c: sqlite3.Connection, results: Sequence[BatchResult], worker: str, now: float) -> int:
    recorded = 0
    for result in results:
        first_time = c.execute(
            "INSERT OR IGNORE INTO batches (seq, batch_key, worker, recipients, done_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (result.seq, result.batch_key, worker, result.recipients, now),
        ).rowcount
        if not first_time:
            continue
        recorded += 1
        delivered = 0
        if result.inbox:
            users = orjson.dumps(result.inbox)
            delivered = c.execute(_INBOX, (result.seq, users)).rowcount
            c.execute(_INBOX_LOG, (result.seq, now, users))
        if result.outcomes:
            c.executemany(
                _LOG,
                [
                    (
                        o.user_id,
                        result.seq,
                        o.channel.value,
                        o.attempt,
                        o.outcome.value,
                        o.reason,
                        now,
                    )
                    for o in result.outcomes
                ],
            )
        c.execute(
            _PROGRESS,
            {
                "seq": result.seq,
                "batches": int(result.completes_batch),
                "delivered": delivered,
                "suppressed": result.suppressed,
                "now": now,
            },
        )
    return recorded
