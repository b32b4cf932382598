"""The per-sender breaker's state: recent strikes (dead-lettered events) and blocks."""

from __future__ import annotations

import sqlite3

from clarion.backends.sqlite import SqliteDatabase


class SqliteSenderGuardStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def strike(
        self, sender: str, error: str, now: float, *, limit: int, window_s: float
    ) -> bool:
        def _strike(c: sqlite3.Connection) -> bool:
            c.execute("DELETE FROM sender_strikes WHERE at < ?", (now - window_s,))
            c.execute(
                "INSERT INTO sender_strikes (sender, at, error) VALUES (?, ?, ?)",
                (sender, now, error[:500]),
            )
            (count,) = c.execute(
                "SELECT count(*) FROM sender_strikes WHERE sender = ?", (sender,)
            ).fetchone()
            if count < limit:
                return False
            reason = f"{count} events dead-lettered within {window_s:g}s; last: {error[:200]}"
            return (
                c.execute(
                    "INSERT INTO sender_blocks (sender, blocked_at, reason) VALUES (?, ?, ?)"
                    " ON CONFLICT (sender) DO NOTHING",
                    (sender, now, reason),
                ).rowcount
                > 0
            )

        return await self._db.write(_strike)

    async def blocked(self) -> dict[str, tuple[float, str]]:
        rows = await self._db.read(
            lambda c: c.execute("SELECT sender, blocked_at, reason FROM sender_blocks").fetchall()
        )
        return {sender: (at, reason) for sender, at, reason in rows}

    async def unblock(self, sender: str) -> bool:
        def _unblock(c: sqlite3.Connection) -> bool:
            c.execute("DELETE FROM sender_strikes WHERE sender = ?", (sender,))
            return c.execute("DELETE FROM sender_blocks WHERE sender = ?", (sender,)).rowcount > 0

        return await self._db.write(_unblock)
