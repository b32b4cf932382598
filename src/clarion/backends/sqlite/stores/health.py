"""Provider health records: one JSON document per provider, changed in a write transaction
so concurrent workers move the same breaker and drain the same buckets."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.resilience.breaker import Health

T = TypeVar("T")


class SqliteProviderHealthStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def update(self, provider: str, change: Callable[[Health], tuple[Health, T]]) -> T:
        def _update(c: sqlite3.Connection) -> T:
            row = c.execute(
                "SELECT doc FROM provider_health WHERE provider = ?", (provider,)
            ).fetchone()
            before = Health() if row is None else Health.from_json(orjson.loads(row[0]))
            after, answer = change(before)
            if after != before:
                c.execute(
                    "INSERT INTO provider_health (provider, doc) VALUES (?, ?)"
                    " ON CONFLICT (provider) DO UPDATE SET doc = excluded.doc",
                    (provider, orjson.dumps(after.to_json()).decode()),
                )
            return answer

        return await self._db.write(_update)

    async def all(self) -> dict[str, Health]:
        rows = await self._db.read(
            lambda c: c.execute("SELECT provider, doc FROM provider_health").fetchall()
        )
        return {name: Health.from_json(orjson.loads(doc)) for name, doc in rows}
