"""The follower graph: ``(creator, follower)`` pairs, paged by follower id.

Writes go through ``json_each`` so a 10,000-id chunk is one statement whose loop runs in
SQLite, and the per-creator count is kept in step in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.pages import id_page
from clarion.types import UserId


class SqliteFollowerStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def add(self, creator: UserId, followers: Sequence[UserId]) -> int:
        ids = orjson.dumps(list(followers))

        def _add(c: sqlite3.Connection) -> int:
            added = c.execute(
                "INSERT OR IGNORE INTO followers (creator_id, follower_id)"
                " SELECT ?, value FROM json_each(?)",
                (creator, ids),
            ).rowcount
            _bump(c, creator, added)
            _log_changes(c, creator, ids, added=True)
            return added

        return await self._db.write(_add) if followers else 0

    async def remove(self, creator: UserId, followers: Sequence[UserId]) -> int:
        ids = orjson.dumps(list(followers))

        def _remove(c: sqlite3.Connection) -> int:
            removed = c.execute(
                "DELETE FROM followers WHERE creator_id = ?"
                " AND follower_id IN (SELECT value FROM json_each(?))",
                (creator, ids),
            ).rowcount
            _bump(c, creator, -removed)
            _log_changes(c, creator, ids, added=False)
            return removed

        return await self._db.write(_remove) if followers else 0

    async def count(self, creator: UserId) -> int:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT count FROM follower_counts WHERE creator_id = ?", (creator,)
            ).fetchone()
        )
        return 0 if row is None else int(row[0])

    async def page(self, creator: UserId, *, after: UserId | None, limit: int) -> list[UserId]:
        return await self._db.read(
            lambda c: id_page(
                c,
                "SELECT follower_id AS id FROM followers WHERE creator_id = ?"
                " AND follower_id > ? ORDER BY follower_id LIMIT ?",
                (creator, after or "", limit),
            )
        )

    async def between(
        self, creator: UserId, *, after: UserId | None, upto: UserId | None
    ) -> list[UserId]:
        sql = "SELECT follower_id AS id FROM followers WHERE creator_id = ? AND follower_id > ?"
        params: tuple[str, ...] = (creator, after or "")
        if upto is not None:
            sql, params = sql + " AND follower_id <= ?", (*params, upto)
        return await self._db.read(lambda c: id_page(c, sql + " ORDER BY follower_id", params))


def _log_changes(c: sqlite3.Connection, creator: UserId, ids: bytes, *, added: bool) -> None:
    """Creators with precomputed partitions get their changes logged, in the same commit,
    for the next incremental refresh (``backends.sqlite.stores.partitions``)."""
    c.execute(
        "INSERT INTO follower_changes (creator_id, follower_id, added)"
        " SELECT ?, value, ? FROM json_each(?)"
        " WHERE EXISTS (SELECT 1 FROM partition_sets WHERE creator_id = ?)",
        (creator, int(added), ids, creator),
    )


def _bump(c: sqlite3.Connection, creator: UserId, delta: int) -> None:
    if delta:
        c.execute(
            "INSERT INTO follower_counts (creator_id, count) VALUES (?, ?)"
            " ON CONFLICT (creator_id) DO UPDATE SET count = count + excluded.count",
            (creator, delta),
        )
