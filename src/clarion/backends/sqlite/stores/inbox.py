from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.stores.records import Aggregate, InboxItem, InboxPage
from clarion.stores.rows import INBOX_COLUMNS, aggregate_of, inbox_item
from clarion.types import EventId, Seq, UserId

_PAGE = (
    f"SELECT {INBOX_COLUMNS} FROM inbox i JOIN events e ON e.seq = i.seq"
    " WHERE i.user_id = ? AND i.seq < ? ORDER BY i.seq DESC LIMIT ?"
)


class SqliteInboxStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def page(self, user_id: UserId, *, before: Seq | None, limit: int) -> InboxPage:
        upper = before if before is not None else 2**62

        def _page(c: sqlite3.Connection) -> InboxPage:
            rows = c.execute(_PAGE, (user_id, upper, limit + 1)).fetchall()
            unread = c.execute(
                "SELECT count(*) FROM inbox WHERE user_id = ? AND read_at IS NULL", (user_id,)
            ).fetchone()[0]
            items = [inbox_item(r) for r in rows[:limit]]
            more = len(rows) > limit
            return InboxPage(items, items[-1].seq if more else None, int(unread))

        return await self._db.snapshot(_page)

    async def mark_read(self, user_id: UserId, seqs: Sequence[Seq] | None, at: float) -> int:
        if seqs is None:
            sql = "UPDATE inbox SET read_at = ? WHERE user_id = ? AND read_at IS NULL"
            params: tuple[object, ...] = (at, user_id)
        else:
            sql = (
                "UPDATE inbox SET read_at = ? WHERE user_id = ? AND read_at IS NULL"
                " AND seq IN (SELECT value FROM json_each(?))"
            )
            params = (at, user_id, orjson.dumps(list(seqs)))
        return await self._db.write(lambda c: c.execute(sql, params).rowcount)

    async def items(self, user_id: UserId, seqs: Sequence[Seq]) -> list[InboxItem]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {INBOX_COLUMNS} FROM inbox i JOIN events e ON e.seq = i.seq"
                " WHERE i.user_id = ? AND i.seq IN (SELECT value FROM json_each(?))"
                " ORDER BY i.seq DESC",
                (user_id, orjson.dumps(list(seqs))),
            ).fetchall()
        )
        return [inbox_item(r) for r in rows]

    async def aggregates(self, user_id: UserId, seqs: Sequence[Seq]) -> dict[Seq, Aggregate]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT seq, aggregate FROM inbox WHERE user_id = ? AND aggregate IS NOT NULL"
                " AND seq IN (SELECT value FROM json_each(?))",
                (user_id, orjson.dumps(list(seqs))),
            ).fetchall()
        )
        return {Seq(r[0]): aggregate_of(r[1]) for r in rows}

    async def count_for_event(self, event_id: EventId) -> int:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT count(*) FROM inbox"
                " WHERE seq = (SELECT seq FROM events WHERE event_id = ?)",
                (event_id,),
            ).fetchone()
        )
        return int(row[0])
