"""Digests in PostgreSQL: one row per (person, due time) and one per item. ``add`` and
``take`` lock each person first (a transaction-scoped advisory lock, in one order), so two
workers adding to one digest, or adding while it is taken, see each other."""

from __future__ import annotations

from collections.abc import Sequence

from clarion.backends.postgres import Connection, PostgresDatabase, locks
from clarion.backends.postgres.locks import lock_keys
from clarion.stores.records import Digest, DigestItem
from clarion.stores.rows import digest_id
from clarion.types import Seq, UserId

_DIGEST = "SELECT scheduled_by, digest_id FROM digests WHERE user_id = $1 AND due_at = $2"
_HAS_ITEM = "SELECT 1 FROM digest_items WHERE user_id = $1 AND due_at = $2 AND item = $3"


class PostgresDigestStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def add(self, items: Sequence[DigestItem], now: float) -> list[tuple[float, bool]]:
        if not items:
            return []
        async with self._db.transaction() as c:
            await lock_keys(c, locks.DIGESTS, [i.user_id for i in items])
            return [await _add(c, item, now) for item in items]

    async def take(self, user_id: UserId, due_at: float) -> Digest | None:
        async with self._db.transaction() as c:
            await lock_keys(c, locks.DIGESTS, [user_id])
            found = await c.fetchrow(_DIGEST, user_id, due_at)
            if found is None:
                return None
            taken = found[1] or digest_id(user_id, due_at)
            if found[1] is None:
                await c.execute(
                    "UPDATE digests SET digest_id = $1 WHERE user_id = $2 AND due_at = $3",
                    taken,
                    user_id,
                    due_at,
                )
            rows = await c.fetch(
                "SELECT seq, entry FROM digest_items WHERE user_id = $1 AND due_at = $2"
                " ORDER BY seq",
                user_id,
                due_at,
            )
        return Digest(taken, [(Seq(r[0]), None if r[1] is None else Seq(r[1])) for r in rows])


async def _add(c: Connection, item: DigestItem, now: float) -> tuple[float, bool]:
    due = item.due_at
    found = await c.fetchrow(_DIGEST, item.user_id, due)
    if found is not None and found[1] is not None:  # taken for sending already
        if await c.fetchrow(_HAS_ITEM, item.user_id, due, item.item):
            return due, found[0] == item.seq  # a redelivery of what it carried
        due = now  # a straggler: a digest of its own, due at once
        found = await c.fetchrow(_DIGEST, item.user_id, due)
    if found is None:
        await c.execute(
            "INSERT INTO digests (user_id, due_at, scheduled_by) VALUES ($1, $2, $3)",
            item.user_id,
            due,
            item.seq,
        )
    await c.execute(
        "INSERT INTO digest_items (user_id, due_at, item, seq, entry) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (user_id, due_at, item) DO UPDATE SET seq = excluded.seq",
        item.user_id,
        due,
        item.item,
        item.seq,
        item.entry,
    )
    return due, found is None or found[0] == item.seq
