"""Aggregation windows in PostgreSQL: one state row per key and one row per notification's
answer. ``join`` and ``take`` first take a transaction-scoped advisory lock per key, always
in the same order (two workers never deadlock), then read, decide
(``policy.aggregation``) and write: another worker joining the same key waits for this
commit and then sees its window."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from clarion.backends.postgres import Connection, PostgresDatabase, locks
from clarion.backends.postgres.locks import lock_keys
from clarion.policy.aggregation import (
    KEEP_WINDOWS,
    AggregateKey,
    Joined,
    JoinRequest,
    Role,
    Window,
    WindowSummary,
    join_all,
    take,
)
from clarion.types import Seq, UserId

_STATES = """
SELECT a.user_id, a.type, a.object, a.state
FROM unnest($1::text[], $2::text[], $3::text[]) AS k(u, t, o)
JOIN aggregates a ON a.user_id = k.u AND a.type = k.t AND a.object = k.o
"""
_MEMBERS = """
SELECT m.user_id, m.type, m.object, m.seq, m.joined
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS k(u, t, o, s)
JOIN aggregate_members m ON m.user_id = k.u AND m.type = k.t AND m.object = k.o AND m.seq = k.s
"""
_SAVE = """
INSERT INTO aggregates (user_id, type, object, state)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
ON CONFLICT (user_id, type, object) DO UPDATE SET state = excluded.state
"""
_REMEMBER = """
INSERT INTO aggregate_members (user_id, type, object, seq, win, joined)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[])
ON CONFLICT DO NOTHING
"""
_FORGET = """
DELETE FROM aggregate_members m USING unnest($1::text[], $2::text[], $3::text[], $4::int[])
    AS k(u, t, o, w)
WHERE m.user_id = k.u AND m.type = k.t AND m.object = k.o AND m.win < k.w
"""


def _key(row: Sequence[str]) -> AggregateKey:
    return AggregateKey(UserId(row[0]), row[1], row[2])


def _columns(keys: Sequence[AggregateKey]) -> tuple[list[str], list[str], list[str]]:
    return [k.user_id for k in keys], [k.type for k in keys], [k.object for k in keys]


class PostgresAggregateStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def join(self, requests: Sequence[JoinRequest], now: float) -> list[Joined]:
        if not requests:
            return []
        async with self._db.transaction() as c:
            windows = await _locked_states(c, [r.key for r in requests])
            rows = await c.fetch(
                _MEMBERS, *_columns([r.key for r in requests]), [r.seq for r in requests]
            )
            members = {
                (_key(row), Seq(row[3])): Joined.from_json(orjson.loads(row[4])) for row in rows
            }
            answers, changed, new = join_all(requests, windows, members, now)
            await _save(c, changed)
            if new:
                keys = [k for k, _ in new]
                await c.execute(
                    _REMEMBER,
                    *_columns(keys),
                    [s for _, s in new],
                    [j.window for j in new.values()],
                    [orjson.dumps(j.to_json()).decode() for j in new.values()],
                )
            opened = {(k, j.window) for (k, _), j in new.items() if j.role is Role.FIRST}
            stale = [(k, w - KEEP_WINDOWS) for k, w in opened if w > KEEP_WINDOWS]
            if stale:
                await c.execute(_FORGET, *_columns([k for k, _ in stale]), [w for _, w in stale])
        return answers

    async def take(self, windows: Sequence[tuple[AggregateKey, int]]) -> list[WindowSummary | None]:
        if not windows:
            return []
        async with self._db.transaction() as c:
            states = await _locked_states(c, [k for k, _ in windows])
            summaries = [take(states.get(key), number) for key, number in windows]
            await _save(c, states)
        return summaries


async def _locked_states(c: Connection, keys: Sequence[AggregateKey]) -> dict[AggregateKey, Window]:
    unique = list(dict.fromkeys(keys))
    await lock_keys(c, locks.AGGREGATES, [k.text() for k in unique])
    rows = await c.fetch(_STATES, *_columns(unique))
    return {_key(row): Window.from_json(orjson.loads(row[3])) for row in rows}


async def _save(c: Connection, windows: dict[AggregateKey, Window]) -> None:
    if windows:
        keys = list(windows)
        states = [orjson.dumps(windows[k].to_json()).decode() for k in keys]
        await c.execute(_SAVE, *_columns(keys), states)
