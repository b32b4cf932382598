"""The per-sender breaker's state: recent strikes (dead-lettered events) and blocks."""

from __future__ import annotations

from clarion.backends.postgres import PostgresDatabase


class PostgresSenderGuardStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def strike(
        self, sender: str, error: str, now: float, *, limit: int, window_s: float
    ) -> bool:
        async with self._db.transaction() as c:
            await c.execute("SELECT pg_advisory_xact_lock(hashtext($1))", sender)
            await c.execute("DELETE FROM sender_strikes WHERE at < $1", now - window_s)
            await c.execute(
                "INSERT INTO sender_strikes (sender, at, error) VALUES ($1, $2, $3)",
                sender,
                now,
                error[:500],
            )
            count = await c.fetchval(
                "SELECT count(*) FROM sender_strikes WHERE sender = $1", sender
            )
            if count < limit:
                return False
            reason = f"{count} events dead-lettered within {window_s:g}s; last: {error[:200]}"
            blocked = await c.fetchval(
                "INSERT INTO sender_blocks (sender, blocked_at, reason) VALUES ($1, $2, $3)"
                " ON CONFLICT (sender) DO NOTHING RETURNING true",
                sender,
                now,
                reason,
            )
            return bool(blocked)

    async def blocked(self) -> dict[str, tuple[float, str]]:
        rows = await self._db.fetch("SELECT sender, blocked_at, reason FROM sender_blocks")
        return {sender: (at, reason) for sender, at, reason in rows}

    async def unblock(self, sender: str) -> bool:
        async with self._db.transaction() as c:
            await c.execute("DELETE FROM sender_strikes WHERE sender = $1", sender)
            gone = await c.fetchval(
                "WITH d AS (DELETE FROM sender_blocks WHERE sender = $1 RETURNING 1)"
                " SELECT count(*) FROM d",
                sender,
            )
            return bool(gone)
