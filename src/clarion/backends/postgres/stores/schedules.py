"""Recurring sends in PostgreSQL; a run is claimed by moving its next run time with a
compare-and-set (one UPDATE … WHERE next_run_at = was)."""

from __future__ import annotations

from typing import Any

import orjson

from clarion.backends.postgres import PostgresDatabase
from clarion.stores.records import Schedule

_COLUMNS = "id, sender, cron, timezone, event, next_run_at, created_at, last_run_at"


def _schedule(row: Any) -> Schedule:
    return Schedule(row[0], row[1], row[2], row[3], orjson.loads(row[4]), *row[5:])


class PostgresScheduleStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create(self, s: Schedule) -> None:
        await self._db.execute(
            f"INSERT INTO schedules ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            s.id, s.sender, s.cron, s.timezone, orjson.dumps(s.event).decode(),
            s.next_run_at, s.created_at, s.last_run_at,
        )  # fmt: skip

    async def get(self, schedule_id: str) -> Schedule | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM schedules WHERE id = $1", schedule_id
        )
        return None if row is None else _schedule(row)

    async def listed(self, sender: str | None) -> list[Schedule]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE $1::text IS NULL OR sender = $1"
            " ORDER BY created_at, id",
            sender,
        )
        return [_schedule(r) for r in rows]

    async def delete(self, schedule_id: str, sender: str | None) -> bool:
        gone = await self._db.execute(
            "DELETE FROM schedules WHERE id = $1 AND ($2::text IS NULL OR sender = $2)",
            schedule_id,
            sender,
        )
        return bool(gone)

    async def due(self, now: float, limit: int) -> list[Schedule]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE next_run_at <= $1"
            " ORDER BY next_run_at LIMIT $2",
            now,
            limit,
        )
        return [_schedule(r) for r in rows]

    async def advance(self, schedule_id: str, was: float, to: float, ran_at: float) -> bool:
        moved = await self._db.execute(
            "UPDATE schedules SET next_run_at = $1, last_run_at = $2"
            " WHERE id = $3 AND next_run_at = $4",
            to,
            ran_at,
            schedule_id,
            was,
        )
        return bool(moved)
