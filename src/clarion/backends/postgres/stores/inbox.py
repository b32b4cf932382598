from __future__ import annotations

from collections.abc import Sequence

from clarion.backends.postgres import PostgresDatabase
from clarion.stores.records import Aggregate, InboxItem, InboxPage
from clarion.stores.rows import INBOX_COLUMNS, aggregate_of, inbox_item
from clarion.types import EventId, Seq, UserId

_PAGE = (
    f"SELECT {INBOX_COLUMNS} FROM inbox i JOIN events e ON e.seq = i.seq"
    " WHERE i.user_id = $1 AND i.seq < $2 ORDER BY i.seq DESC LIMIT $3"
)


class PostgresInboxStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def page(self, user_id: UserId, *, before: Seq | None, limit: int) -> InboxPage:
        upper = before if before is not None else 2**62
        async with self._db.transaction() as c:
            await c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            rows = await c.fetch(_PAGE, user_id, upper, limit + 1)
            unread = await c.fetchval(
                "SELECT count(*) FROM inbox WHERE user_id = $1 AND read_at IS NULL", user_id
            )
        items = [inbox_item(r) for r in rows[:limit]]
        more = len(rows) > limit
        return InboxPage(items, items[-1].seq if more else None, int(unread))

    async def items(self, user_id: UserId, seqs: Sequence[Seq]) -> list[InboxItem]:
        rows = await self._db.fetch(
            f"SELECT {INBOX_COLUMNS} FROM inbox i JOIN events e ON e.seq = i.seq"
            " WHERE i.user_id = $1 AND i.seq = ANY($2::bigint[]) ORDER BY i.seq DESC",
            user_id,
            list(seqs),
        )
        return [inbox_item(r) for r in rows]

    async def aggregates(self, user_id: UserId, seqs: Sequence[Seq]) -> dict[Seq, Aggregate]:
        rows = await self._db.fetch(
            "SELECT seq, aggregate FROM inbox WHERE user_id = $1 AND aggregate IS NOT NULL"
            " AND seq = ANY($2::bigint[])",
            user_id,
            list(seqs),
        )
        return {Seq(r[0]): aggregate_of(r[1]) for r in rows}

    async def mark_read(self, user_id: UserId, seqs: Sequence[Seq] | None, at: float) -> int:
        return await self._db.execute(
            "UPDATE inbox SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL"
            " AND ($3::bigint[] IS NULL OR seq = ANY($3::bigint[]))",
            at,
            user_id,
            None if seqs is None else list(seqs),
        )

    async def count_for_event(self, event_id: EventId) -> int:
        found = await self._db.fetchval(
            "SELECT count(*) FROM inbox WHERE seq = (SELECT seq FROM events WHERE event_id = $1)",
            event_id,
        )
        return int(found)
