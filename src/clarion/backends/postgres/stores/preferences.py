from __future__ import annotations

from collections.abc import Sequence

import orjson

from clarion.backends.postgres import PostgresDatabase
from clarion.backends.postgres.stores.audit import read_audit, record_audit
from clarion.errors import StaleVersionError
from clarion.stores.records import AuditEntry, StoredPreferences
from clarion.types import JSONObject, UserId


class PostgresPreferenceStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get(self, user_id: UserId) -> StoredPreferences | None:
        row = await self._db.fetchrow(
            "SELECT doc, version, updated_at FROM preferences WHERE user_id = $1", user_id
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
        async with self._db.transaction() as c:
            before = await c.fetchrow(
                "SELECT doc, version FROM preferences WHERE user_id = $1 FOR UPDATE", user_id
            )
            if expected_version is not None and expected_version != (before[1] if before else 0):
                raise StaleVersionError(f"preferences of {user_id!r} changed meanwhile")
            if before is None and expected_version is not None:
                # Two first writes at once: the loser finds the row taken, a stale version.
                version = await c.fetchval(
                    "INSERT INTO preferences (user_id, doc, version, updated_at)"
                    " VALUES ($1, $2, 1, $3) ON CONFLICT (user_id) DO NOTHING RETURNING version",
                    user_id,
                    raw,
                    at,
                )
                if version is None:
                    raise StaleVersionError(f"preferences of {user_id!r} changed meanwhile")
            else:
                version = await c.fetchval(
                    "INSERT INTO preferences (user_id, doc, version, updated_at)"
                    " VALUES ($1, $2, 1, $3) ON CONFLICT (user_id) DO UPDATE SET"
                    " doc = excluded.doc, version = preferences.version + 1,"
                    " updated_at = excluded.updated_at RETURNING version",
                    user_id,
                    raw,
                    at,
                )
            await record_audit(c, "preferences", user_id, actor, at, before and before[0], raw)
        return StoredPreferences(user_id, raw, int(version), at)

    async def history(self, user_id: UserId, *, limit: int) -> list[AuditEntry]:
        return await read_audit(self._db, "preferences", user_id, limit)

    async def load_many(self, user_ids: Sequence[UserId]) -> dict[UserId, StoredPreferences]:
        rows = await self._db.fetch(
            "SELECT user_id, doc, version, updated_at FROM preferences"
            " WHERE user_id = ANY($1::text[])",
            list(user_ids),
        )
        return {r[0]: r for r in map(StoredPreferences._make, rows)}

    async def documents(self, user_ids: Sequence[UserId]) -> dict[str, list[UserId]]:
        rows = await self._db.fetch(
            "SELECT doc, array_agg(user_id) FROM preferences"
            " WHERE user_id = ANY($1::text[]) GROUP BY doc",
            list(dict.fromkeys(user_ids)),
        )
        return {r[0]: r[1] for r in rows}
