from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores.audit import read_audit, record_audit
from clarion.errors import StaleVersionError
from clarion.stores.records import AuditEntry, StoredPreferences
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
        return None if row is None else StoredPreferences(user_id, row[0], row[1], row[2])

    async def put(
        self,
        user_id: UserId,
        doc: JSONObject,
        at: float,
        actor: str,
        *,
        expected_version: int | None = None,
    ) -> StoredPreferences:
        raw = orjson.dumps(doc).decode()

        def _put(c: sqlite3.Connection) -> int:
            before = c.execute(
                "SELECT doc, version FROM preferences WHERE user_id = ?", (user_id,)
            ).fetchone()
            if expected_version is not None and expected_version != (before[1] if before else 0):
                raise StaleVersionError(f"preferences of {user_id!r} changed meanwhile")
            row = c.execute(
                "INSERT INTO preferences (user_id, doc, version, updated_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET doc = excluded.doc,"
                " version = version + 1, updated_at = excluded.updated_at RETURNING version",
                (user_id, raw, at),
            ).fetchone()
            record_audit(c, "preferences", user_id, actor, at, before and before[0], raw)
            return int(row[0])

        version = await self._db.write(_put)
        return StoredPreferences(user_id, raw, version, at)

    async def history(self, user_id: UserId, *, limit: int) -> list[AuditEntry]:
        return await read_audit(self._db, "preferences", user_id, limit)

    async def load_many(self, user_ids: Sequence[UserId]) -> dict[UserId, StoredPreferences]:
        ids = orjson.dumps(list(user_ids))
        rows = await self._db.read(
            lambda c: c.execute(
                # Driven from the id list: one key lookup per id, no temporary IN-list.
                "SELECT p.user_id, p.doc, p.version, p.updated_at"
                " FROM json_each(?) j CROSS JOIN preferences p ON p.user_id = j.value",
                (ids,),
            ).fetchall()
        )
        return {UserId(r[0]): StoredPreferences(UserId(r[0]), r[1], r[2], r[3]) for r in rows}
