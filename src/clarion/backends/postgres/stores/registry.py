from __future__ import annotations

import orjson

from clarion.backends.postgres import PostgresDatabase
from clarion.models import TypeSpec


class PostgresTypeStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def put(self, spec: TypeSpec, at: float) -> None:
        await self._db.execute(
            "INSERT INTO notification_types (name, spec, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (name) DO UPDATE SET spec = excluded.spec,"
            " updated_at = excluded.updated_at",
            spec.name,
            orjson.dumps(spec.to_json()).decode(),
            at,
        )

    async def get(self, name: str) -> TypeSpec | None:
        doc = await self._db.fetchval("SELECT spec FROM notification_types WHERE name = $1", name)
        return None if doc is None else TypeSpec.from_json(orjson.loads(doc))

    async def list(self) -> list[TypeSpec]:
        rows = await self._db.fetch("SELECT spec FROM notification_types ORDER BY name")
        return [TypeSpec.from_json(orjson.loads(r[0])) for r in rows]
