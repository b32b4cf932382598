"""Recurring sends in the SQLite file; a run is claimed by moving its next run time with a
compare-and-set, which SQLite's single writer makes atomic."""

from __future__ import annotations

from typing import Any

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.stores.records import Schedule

_COLUMNS = "id, sender, cron, timezone, event, next_run_at, created_at, last_run_at"


def _schedule(row: Any) -> Schedule:
    return Schedule(row[0], row[1], row[2], row[3], orjson.loads(row[4]), *row[5:])


class SqliteScheduleStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, s: Schedule) -> None:
        await self._db.write(
            lambda c: c.execute(
                f"INSERT INTO schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (s.id, s.sender, s.cron, s.timezone, orjson.dumps(s.event).decode(),
                 s.next_run_at, s.created_at, s.last_run_at),
            )
        )  # fmt: skip

    async def get(self, schedule_id: str) -> Schedule | None:
        row = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM schedules WHERE id = ?", (schedule_id,)
            ).fetchone()
        )
        return None if row is None else _schedule(row)

    async def listed(self, sender: str | None) -> list[Schedule]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM schedules WHERE ? IS NULL OR sender = ?"
                " ORDER BY created_at, id",
                (sender, sender),
            ).fetchall()
        )
        return [_schedule(r) for r in rows]

    async def delete(self, schedule_id: str, sender: str | None) -> bool:
        gone = await self._db.write(
            lambda c: (
                c.execute(
                    "DELETE FROM schedules WHERE id = ? AND (? IS NULL OR sender = ?)",
                    (schedule_id, sender, sender),
                ).rowcount
            )
        )
        return bool(gone)

    async def due(self, now: float, limit: int) -> list[Schedule]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM schedules WHERE next_run_at <= ?"
                " ORDER BY next_run_at LIMIT ?",
                (now, limit),
            ).fetchall()
        )
        return [_schedule(r) for r in rows]

    async def advance(self, schedule_id: str, was: float, to: float, ran_at: float) -> bool:
        moved = await self._db.write(
            lambda c: (
                c.execute(
                    "UPDATE schedules SET next_run_at = ?, last_run_at = ?"
                    " WHERE id = ? AND next_run_at = ?",
                    (to, ran_at, schedule_id, was),
                ).rowcount
            )
        )
        return bool(moved)
