from __future__ import annotations

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.models import TypeSpec


class SqliteTypeStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def put(self, spec: TypeSpec, at: float) -> None:
        doc = orjson.dumps(spec.to_json()).decode()
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO notification_types (name, spec, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET spec = excluded.spec,"
                " updated_at = excluded.updated_at",
                (spec.name, doc, at),
            )
        )

    async def get(self, name: str) -> TypeSpec | None:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT spec FROM notification_types WHERE name = ?", (name,)
            ).fetchone()
        )
        return None if row is None else TypeSpec.from_json(orjson.loads(row[0]))

    async def list(self) -> list[TypeSpec]:
        rows = await self._db.read(
            lambda c: c.execute("SELECT spec FROM notification_types ORDER BY name").fetchall()
        )
        return [TypeSpec.from_json(orjson.loads(r[0])) for r in rows]
