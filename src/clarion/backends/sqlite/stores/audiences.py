"""Uploaded audiences in the SQLite file: members keyed (audience, user), so repeats fold
and a campaign pages them in id order."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.pages import id_page
from clarion.stores.records import Audience
from clarion.types import UserId

_COLUMNS = "id, sender, name, size, created_at"


def _audience(row: Any) -> Audience:
    return Audience(*row)


class SqliteAudienceStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def add_members(self, audience_id: str, user_ids: Sequence[UserId]) -> None:
        rows = [(audience_id, u) for u in user_ids]
        await self._db.write(
            lambda c: c.executemany(
                "INSERT OR IGNORE INTO audience_members (audience_id, user_id) VALUES (?, ?)", rows
            )
        )

    async def publish(self, audience: Audience) -> Audience:
        def _publish(c: sqlite3.Connection) -> Audience:
            (size,) = c.execute(
                "SELECT count(*) FROM audience_members WHERE audience_id = ?", (audience.id,)
            ).fetchone()
            a = Audience(
                audience.id, audience.sender, audience.name, int(size), audience.created_at
            )
            c.execute(
                f"INSERT INTO audiences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (a.id, a.sender, a.name, a.size, a.created_at),
            )
            return a

        return await self._db.write(_publish)

    async def discard(self, audience_id: str) -> None:
        def _discard(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM audiences WHERE id = ?", (audience_id,))
            c.execute("DELETE FROM audience_members WHERE audience_id = ?", (audience_id,))

        await self._db.write(_discard)

    async def get(self, audience_id: str) -> Audience | None:
        row = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM audiences WHERE id = ?", (audience_id,)
            ).fetchone()
        )
        return None if row is None else _audience(row)

    async def listed(self, sender: str | None) -> list[Audience]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM audiences WHERE ? IS NULL OR sender = ?"
                " ORDER BY created_at, id",
                (sender, sender),
            ).fetchall()
        )
        return [_audience(r) for r in rows]

    async def page(self, audience_id: str, after: str | None, limit: int) -> list[UserId]:
        return await self._db.read(
            lambda c: id_page(
                c,
                "SELECT user_id AS id FROM audience_members WHERE audience_id = ?"
                " AND user_id > ? ORDER BY user_id LIMIT ?",
                (audience_id, after or "", limit),
            )
        )
