"""Provider health records, changed under a row lock so every worker moves the same
breaker and drains the same buckets."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import orjson

from clarion.postgres import PostgresDatabase
from clarion.resilience.breaker import Health

T = TypeVar("T")


class PostgresProviderHealthStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def update(self, provider: str, change: Callable[[Health], tuple[Health, T]]) -> T:
        async with self._db.transaction() as c:
            # The row exists before it is locked, so two first updates cannot both miss it.
            await c.execute(
                "INSERT INTO provider_health (provider, doc) VALUES ($1, $2)"
                " ON CONFLICT (provider) DO NOTHING",
                provider,
                orjson.dumps(Health().to_json()).decode(),
            )
            doc = await c.fetchval(
                "SELECT doc FROM provider_health WHERE provider = $1 FOR UPDATE", provider
            )
            before = Health.from_json(orjson.loads(doc))
            after, answer = change(before)
            if after != before:
                await c.execute(
                    "UPDATE provider_health SET doc = $2 WHERE provider = $1",
                    provider,
                    orjson.dumps(after.to_json()).decode(),
                )
            return answer

    async def all(self) -> dict[str, Health]:
        rows = await self._db.fetch("SELECT provider, doc FROM provider_health")
        return {name: Health.from_json(orjson.loads(doc)) for name, doc in rows}
