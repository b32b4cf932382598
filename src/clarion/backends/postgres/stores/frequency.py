"""The places capped people hold in their rolling windows: one row per (person, event).

``reserve`` takes a transaction-scoped advisory lock per person, always in the same order
(so two workers never deadlock), then reads, decides (``frequency.allot``) and writes:
another worker deciding for the same person waits for this commit and then sees its
places."""

from __future__ import annotations

from collections.abc import Sequence

from clarion.backends.postgres import PostgresDatabase, locks
from clarion.backends.postgres.locks import lock_keys
from clarion.policy.frequency import DAY_S, CapCheck, SlotRequest, allot
from clarion.types import Seq, UserId


class PostgresFrequencyStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def reserve(self, requests: Sequence[SlotRequest], now: float) -> list[CapCheck]:
        if not requests:
            return []
        people = sorted({r.user_id for r in requests})
        async with self._db.transaction() as c:
            await lock_keys(c, locks.FREQUENCY, people)
            await c.execute(
                "DELETE FROM frequency_slots WHERE user_id = ANY($1::text[]) AND at <= $2",
                people,
                now - DAY_S,
            )
            held: dict[UserId, dict[Seq, float]] = {}
            for user, seq, at in await c.fetch(
                "SELECT user_id, seq, at FROM frequency_slots WHERE user_id = ANY($1::text[])",
                people,
            ):
                held.setdefault(user, {})[seq] = at
            answers, new = allot(requests, held, now)
            if new:
                await c.execute(
                    "INSERT INTO frequency_slots (user_id, seq, at)"
                    " SELECT u, s, $3 FROM unnest($1::text[], $2::bigint[]) AS x(u, s)"
                    " ON CONFLICT DO NOTHING",
                    [u for u, _ in new],
                    [s for _, s in new],
                    now,
                )
        return answers

    async def recent(self, user_ids: Sequence[UserId], since: float) -> dict[UserId, list[float]]:
        if not user_ids:
            return {}
        rows = await self._db.fetch(
            "SELECT user_id, at FROM frequency_slots WHERE user_id = ANY($1::text[])"
            " AND at > $2 ORDER BY user_id, at",
            list(user_ids),
            since,
        )
        found: dict[UserId, list[float]] = {}
        for user, at in rows:
            found.setdefault(UserId(user), []).append(at)
        return found
