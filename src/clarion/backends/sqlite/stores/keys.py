from __future__ import annotations

import sqlite3

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.models import SenderKey
from clarion.stores.rows import KEY_COLUMNS as _COLUMNS
from clarion.stores.rows import key as _key


class SqliteKeyStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, key: SenderKey, key_hash: str) -> None:
        types = None if key.types is None else orjson.dumps(sorted(key.types)).decode()
        await self._db.write(
            lambda c: c.execute(
                f"INSERT INTO api_keys (key_hash, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_hash,
                    key.key_id,
                    key.sender,
                    types,
                    key.rate_per_s,
                    int(key.admin),
                    key.created_at,
                    key.revoked_at,
                ),
            )
        )

    async def find(self, key_hash: str) -> SenderKey | None:
        row = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
        )
        return None if row is None else _key(row)

    async def list(self) -> list[SenderKey]:
        rows = await self._db.read(
            lambda c: c.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at").fetchall()
        )
        return [_key(r) for r in rows]

    async def revoke(self, key_id: str, at: float) -> bool:
        def _revoke(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (at, key_id),
            )
            return cur.rowcount > 0

        return await self._db.write(_revoke)
