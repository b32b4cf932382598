from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from clarion.backends.sqlite import SqliteDatabase
from clarion.stores.records import StageStats


class SqliteStatsStore:
    """Cumulative per-worker, per-stage counters; workers flush them every second or so."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def record(self, worker: str, stats: Sequence[StageStats], now: float) -> None:
        rows = [(s.worker, s.stage, s.messages, s.items, s.busy_s, now) for s in stats]

        def _record(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT INTO worker_stats (worker, stage, messages, items, busy_s, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker, stage) DO UPDATE SET"
                " messages = excluded.messages, items = excluded.items,"
                " busy_s = excluded.busy_s, updated_at = excluded.updated_at",
                rows,
            )
            c.execute(
                "INSERT INTO worker_beats (worker, at) VALUES (?, ?)"
                " ON CONFLICT (worker) DO UPDATE SET at = excluded.at",
                (worker, now),
            )

        await self._db.write(_record)

    async def beats(self) -> dict[str, float]:
        rows = await self._db.read(
            lambda c: c.execute("SELECT worker, at FROM worker_beats").fetchall()
        )
        return {worker: float(at) for worker, at in rows}

    async def all(self) -> list[StageStats]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT worker, stage, messages, items, busy_s FROM worker_stats"
                " ORDER BY worker, stage"
            ).fetchall()
        )
        return [StageStats(*r) for r in rows]
