"""The places capped people hold in their rolling windows: one row per person, its places
a flat JSON array ``[seq, at, seq, at, …]`` (schema version 11).

``reserve`` writes inside one write transaction, and SQLite has one writer at a time across
every process sharing the file: that is what makes a reservation atomic. It decides before
it takes the lock, and under the lock checks that the places it decided on are still
those stored (deciding again if not)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.policy.frequency import DAY_S, CapCheck, SlotRequest, allot
from clarion.types import Seq, UserId

_READ = (
    # Driven from the id list (one key seek per person), not an IN-subquery.
    "SELECT f.user_id, f.places FROM json_each(?) j"
    " CROSS JOIN frequency_places f ON f.user_id = j.value"
)

_WRITE = (
    "INSERT INTO frequency_places (user_id, places) VALUES (?, ?)"
    " ON CONFLICT (user_id) DO UPDATE SET places = excluded.places"
)


class SqliteFrequencyStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def reserve(self, requests: Sequence[SlotRequest], now: float) -> list[CapCheck]:
        if not requests:
            return []
        people = (orjson.dumps(sorted({r.user_id for r in requests})),)
        # Decided before the write lock, on the places as read; under the lock, the places
        # are read again and the decision stands only if nobody changed them meanwhile
        # (else it is made again there). Parsing and deciding took three fifths of the
        # lock's time here, and the lock is what a fan-out's workers queue for.
        read = await self._db.read(lambda c: c.execute(_READ, people).fetchall())
        decided = _decide(requests, read, now)

        def take(c: sqlite3.Connection) -> list[CapCheck]:
            nonlocal decided
            current = c.execute(_READ, people).fetchall()
            if current != read:
                decided = _decide(requests, current, now)
            answers, rows = decided
            c.executemany(_WRITE, rows)
            return answers

        return await self._db.write(take)

    async def recent(self, user_ids: Sequence[UserId], since: float) -> dict[UserId, list[float]]:
        if not user_ids:
            return {}
        rows = await self._db.read(
            lambda c: c.execute(_READ, (orjson.dumps(sorted(set(user_ids))),)).fetchall()
        )
        found = {
            user: sorted(at for at in places.values() if at > since)
            for user, places in _places(rows).items()
        }
        return {user: times for user, times in found.items() if times}


def _decide(
    requests: Sequence[SlotRequest], rows: Iterable[tuple[UserId, str]], now: float
) -> tuple[list[CapCheck], list[tuple[UserId, str]]]:
    """Each request's answer against the places in ``rows``, and the rows to write back:
    each person's last day of places with the new ones."""
    held = _places(rows)
    answers, new = allot(requests, held, now)
    changed: dict[UserId, dict[Seq, float]] = {}
    day_ago = now - DAY_S
    for user, seq in new:
        places = changed.get(user)
        if places is None:  # what is written back is the last day's
            kept = held.get(user, {}).items()
            places = changed[user] = {s: at for s, at in kept if at > day_ago}
        places[seq] = now
    return answers, [(user, _flat(places)) for user, places in changed.items()]


def _places(rows: Iterable[tuple[UserId, str]]) -> dict[UserId, dict[Seq, float]]:
    """Each person's places on record, by event. Some may have left the day's window:
    ``frequency.check`` looks at the last day only, and the next write drops them."""
    held: dict[UserId, dict[Seq, float]] = {}
    loads = orjson.loads
    for user, raw in rows:
        pairs = iter(loads(raw))
        held[user] = dict(zip(pairs, pairs, strict=False))  # (seq, at), (seq, at), …
    return held


def _flat(places: dict[Seq, float]) -> str:
    return orjson.dumps([x for pair in places.items() for x in pair]).decode()
