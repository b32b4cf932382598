from __future__ import annotations

import orjson

from clarion.backends.postgres import PostgresDatabase
from clarion.models import SenderKey
from clarion.stores.rows import KEY_COLUMNS, key


class PostgresKeyStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create(self, k: SenderKey, key_hash: str) -> None:
        types = None if k.types is None else orjson.dumps(sorted(k.types)).decode()
        await self._db.execute(
            f"INSERT INTO api_keys (key_hash, {KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7,"
            " $8)",
            key_hash,
            k.key_id,
            k.sender,
            types,
            k.rate_per_s,
            k.admin,
            k.created_at,
            k.revoked_at,
        )

    async def find(self, key_hash: str) -> SenderKey | None:
        row = await self._db.fetchrow(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1", key_hash
        )
        return None if row is None else key(row)

    async def list(self) -> list[SenderKey]:
        rows = await self._db.fetch(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at")
        return [key(r) for r in rows]

    async def revoke(self, key_id: str, at: float) -> bool:
        return (
            await self._db.execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
                at,
                key_id,
            )
            > 0
        )
