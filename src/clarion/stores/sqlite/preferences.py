from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.sqlite import SqliteDatabase
from clarion.stores.base import StoredPreferences
from clarion.types import JSONObject, UserId


class SqlitePreferenceStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get(self, user_id: UserId) -> StoredPreferences | None:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT doc, version, updated_at FROM preferences WHERE user_id = ?", (user_id,)
            ).fetchone()
        )
        return None if row is None else StoredPreferences(user_id, orjson.loads(row[0]), *row[1:])

    async def put(self, user_id: UserId, doc: JSONObject, at: float) -> StoredPreferences:
        raw = orjson.dumps(doc).decode()

        def _put(c: sqlite3.Connection) -> int:
            row = c.execute(
                "INSERT INTO preferences (user_id, doc, version, updated_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET doc = excluded.doc,"
                " version = version + 1, updated_at = excluded.updated_at RETURNING version",
                (user_id, raw, at),
            ).fetchone()
            return int(row[0])

        version = await self._db.write(_put)
        return StoredPreferences(user_id, doc, version, at)

    async def load_many(self, user_ids: Sequence[UserId]) -> dict[UserId, StoredPreferences]:
        ids = orjson.dumps(list(user_ids))
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT user_id, doc, version, updated_at FROM preferences"
                " WHERE user_id IN (SELECT value FROM json_each(?))",
                (ids,),
            ).fetchall()
        )
        return {
            UserId(r[0]): StoredPreferences(UserId(r[0]), orjson.loads(r[1]), r[2], r[3])
            for r in rows
        }
