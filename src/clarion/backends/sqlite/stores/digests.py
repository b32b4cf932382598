"""Digests in the SQLite file: one row per (person, due time) and one per item. ``add`` and
``take`` run in one write transaction each, which SQLite serializes across processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from clarion.backends.sqlite import SqliteDatabase
from clarion.stores.records import Digest, DigestItem
from clarion.stores.rows import digest_id
from clarion.types import Seq, UserId

_DIGEST = "SELECT scheduled_by, digest_id FROM digests WHERE user_id = ? AND due_at = ?"
_HAS_ITEM = "SELECT 1 FROM digest_items WHERE user_id = ? AND due_at = ? AND item = ?"


class SqliteDigestStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def add(self, items: Sequence[DigestItem], now: float) -> list[tuple[float, bool]]:
        if not items:
            return []
        return await self._db.write(lambda c: [_add(c, item, now) for item in items])

    async def take(self, user_id: UserId, due_at: float) -> Digest | None:
        return await self._db.write(lambda c: _take(c, user_id, due_at))


def _add(c: sqlite3.Connection, item: DigestItem, now: float) -> tuple[float, bool]:
    due = item.due_at
    found = c.execute(_DIGEST, (item.user_id, due)).fetchone()
    if found is not None and found[1] is not None:  # taken for sending already
        if c.execute(_HAS_ITEM, (item.user_id, due, item.item)).fetchone():
            return due, found[0] == item.seq  # a redelivery of what it carried
        due = now  # a straggler: a digest of its own, due at once
        found = c.execute(_DIGEST, (item.user_id, due)).fetchone()
    if found is None:
        c.execute(
            "INSERT INTO digests (user_id, due_at, scheduled_by) VALUES (?, ?, ?)",
            (item.user_id, due, item.seq),
        )
    c.execute(
        "INSERT INTO digest_items (user_id, due_at, item, seq, entry) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO UPDATE SET seq = excluded.seq",
        (item.user_id, due, item.item, item.seq, item.entry),
    )
    return due, found is None or found[0] == item.seq


def _take(c: sqlite3.Connection, user_id: UserId, due_at: float) -> Digest | None:
    found = c.execute(_DIGEST, (user_id, due_at)).fetchone()
    if found is None:
        return None
    taken = found[1] or digest_id(user_id, due_at)
    if found[1] is None:
        c.execute(
            "UPDATE digests SET digest_id = ? WHERE user_id = ? AND due_at = ?",
            (taken, user_id, due_at),
        )
    rows = c.execute(
        "SELECT seq, entry FROM digest_items WHERE user_id = ? AND due_at = ? ORDER BY seq",
        (user_id, due_at),
    ).fetchall()
    return Digest(taken, [(Seq(r[0]), None if r[1] is None else Seq(r[1])) for r in rows])
