from __future__ import annotations

from collections.abc import Sequence

from clarion.backends.postgres import PostgresDatabase
from clarion.stores.records import StageStats


class PostgresStatsStore:
    """Cumulative per-worker, per-stage counters; workers flush them every second or so."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def record(self, worker: str, stats: Sequence[StageStats], now: float) -> None:
        async with self._db.transaction() as c:
            if stats:
                await c.executemany(
                    "INSERT INTO worker_stats (worker, stage, messages, items, busy_s,"
                    " updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (worker, stage)"
                    " DO UPDATE SET messages = excluded.messages, items = excluded.items,"
                    " busy_s = excluded.busy_s, updated_at = excluded.updated_at",
                    [(s.worker, s.stage, s.messages, s.items, s.busy_s, now) for s in stats],
                )
            await c.execute(
                "INSERT INTO worker_beats (worker, at) VALUES ($1, $2)"
                " ON CONFLICT (worker) DO UPDATE SET at = excluded.at",
                worker,
                now,
            )

    async def beats(self) -> dict[str, float]:
        rows = await self._db.fetch("SELECT worker, at FROM worker_beats")
        return {r[0]: float(r[1]) for r in rows}

    async def all(self) -> list[StageStats]:
        rows = await self._db.fetch(
            "SELECT worker, stage, messages, items, busy_s FROM worker_stats ORDER BY worker, stage"
        )
        return [StageStats(*r) for r in rows]
