"""Recent notification times of people with frequency caps (one array per person), appended
in the commit that records the deliveries (``stores.postgres.deliveries``)."""

from __future__ import annotations

from collections.abc import Sequence

from clarion.postgres import PostgresDatabase
from clarion.types import UserId


class PostgresFrequencyStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def recent(self, user_ids: Sequence[UserId], since: float) -> dict[UserId, list[float]]:
        if not user_ids:
            return {}
        rows = await self._db.fetch(
            "SELECT user_id, stamps FROM frequency WHERE user_id = ANY($1::text[])",
            list(user_ids),
        )
        return {UserId(r[0]): [s for s in r[1] if s > since] for r in rows}
