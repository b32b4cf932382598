"""The places capped people hold in their rolling windows: one row per (person, event).

``reserve`` reads and writes inside one write transaction, and SQLite has one writer at a
time across every process sharing the file: that is what makes a reservation atomic."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.policy.frequency import DAY_S, CapCheck, SlotRequest, allot
from clarion.types import Seq, UserId

_PEOPLE = "SELECT value FROM json_each(?)"


class SqliteFrequencyStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def reserve(self, requests: Sequence[SlotRequest], now: float) -> list[CapCheck]:
        if not requests:
            return []
        people = orjson.dumps(sorted({r.user_id for r in requests}))

        def take(c: sqlite3.Connection) -> list[CapCheck]:
            held: dict[UserId, dict[Seq, float]] = {}
            gone: list[tuple[UserId, Seq]] = []  # places older than the day window
            day_ago = now - DAY_S
            for user, seq, at in c.execute(
                # Driven from the id list (one key seek per person), not an IN-subquery.
                "SELECT f.user_id, f.seq, f.at FROM json_each(?) j"
                " CROSS JOIN frequency_slots f ON f.user_id = j.value",
                (people,),
            ):
                if at <= day_ago:
                    gone.append((user, seq))
                elif (places := held.get(user)) is not None:
                    places[seq] = at
                else:
                    held[user] = {seq: at}
            c.executemany("DELETE FROM frequency_slots WHERE user_id = ? AND seq = ?", gone)
            answers, new = allot(requests, held, now)
            c.executemany(
                "INSERT OR IGNORE INTO frequency_slots (user_id, seq, at) VALUES (?, ?, ?)",
                [(user, seq, now) for user, seq in new],
            )
            return answers

        return await self._db.write(take)

    async def recent(self, user_ids: Sequence[UserId], since: float) -> dict[UserId, list[float]]:
        if not user_ids:
            return {}
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT user_id, at FROM frequency_slots WHERE user_id IN ({_PEOPLE})"
                " AND at > ? ORDER BY user_id, at",
                (orjson.dumps(list(user_ids)), since),
            ).fetchall()
        )
        found: dict[UserId, list[float]] = {}
        for user, at in rows:
            found.setdefault(UserId(user), []).append(at)
        return found
