"""Recent notification times of people with frequency caps (one JSON array per person).

Appends happen in ``deliveries._record``, in the commit that records the deliveries, and
drop anything older than a day as they go, so each array stays as small as the cap."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from clarion.sqlite import SqliteDatabase
from clarion.types import UserId


class SqliteFrequencyStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def recent(self, user_ids: Sequence[UserId], since: float) -> dict[UserId, list[float]]:
        if not user_ids:
            return {}
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT f.user_id, f.stamps FROM json_each(?) j"
                " CROSS JOIN frequency f ON f.user_id = j.value",
                (orjson.dumps(list(user_ids)),),
            ).fetchall()
        )
        return {UserId(r[0]): [s for s in orjson.loads(r[1]) if s > since] for r in rows}
