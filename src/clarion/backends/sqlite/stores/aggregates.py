"""Aggregation windows in the SQLite file: one state row per key and one row per
notification's answer. ``join`` and ``take`` read and write inside one write transaction,
and SQLite has one writer at a time across every process sharing the file: that is what
makes them atomic (``policy.aggregation``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
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

_KEYS = (
    "WITH k AS MATERIALIZED (SELECT value ->> 0 AS u, value ->> 1 AS t, value ->> 2 AS o"
    " FROM json_each(?))"
)
_STATES = (
    _KEYS + " SELECT a.user_id, a.type, a.object, a.state FROM k"
    " JOIN aggregates a ON a.user_id = k.u AND a.type = k.t AND a.object = k.o"
)
_MEMBERS = (
    "WITH k AS MATERIALIZED (SELECT value ->> 0 AS u, value ->> 1 AS t, value ->> 2 AS o,"
    " value ->> 3 AS s FROM json_each(?))"
    " SELECT m.user_id, m.type, m.object, m.seq, m.joined FROM k JOIN aggregate_members m"
    " ON m.user_id = k.u AND m.type = k.t AND m.object = k.o AND m.seq = k.s"
)
_SAVE = (
    "INSERT INTO aggregates (user_id, type, object, state) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (user_id, type, object) DO UPDATE SET state = excluded.state"
)
_REMEMBER = (
    "INSERT OR IGNORE INTO aggregate_members (user_id, type, object, seq, win, joined)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_FORGET = "DELETE FROM aggregate_members WHERE user_id = ? AND type = ? AND object = ? AND win < ?"


def _key(row: Sequence[str]) -> AggregateKey:
    return AggregateKey(UserId(row[0]), row[1], row[2])


class SqliteAggregateStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def join(self, requests: Sequence[JoinRequest], now: float) -> list[Joined]:
        if not requests:
            return []
        return await self._db.write(lambda c: _join(c, requests, now))

    async def take(self, windows: Sequence[tuple[AggregateKey, int]]) -> list[WindowSummary | None]:
        if not windows:
            return []
        return await self._db.write(lambda c: _take(c, windows))


def _states(c: sqlite3.Connection, keys: Sequence[AggregateKey]) -> dict[AggregateKey, Window]:
    wanted = orjson.dumps([[k.user_id, k.type, k.object] for k in dict.fromkeys(keys)])
    return {
        _key(row): Window.from_json(orjson.loads(row[3])) for row in c.execute(_STATES, (wanted,))
    }


def _save(c: sqlite3.Connection, windows: dict[AggregateKey, Window]) -> None:
    c.executemany(
        _SAVE,
        [(k.user_id, k.type, k.object, orjson.dumps(w.to_json())) for k, w in windows.items()],
    )


def _join(c: sqlite3.Connection, requests: Sequence[JoinRequest], now: float) -> list[Joined]:
    windows = _states(c, [r.key for r in requests])
    wanted = orjson.dumps([[r.key.user_id, r.key.type, r.key.object, r.seq] for r in requests])
    members = {
        (_key(row), Seq(row[3])): Joined.from_json(orjson.loads(row[4]))
        for row in c.execute(_MEMBERS, (wanted,))
    }
    answers, changed, new = join_all(requests, windows, members, now)
    _save(c, changed)
    c.executemany(
        _REMEMBER,
        [
            (k.user_id, k.type, k.object, seq, j.window, orjson.dumps(j.to_json()))
            for (k, seq), j in new.items()
        ],
    )
    opened = {(k, j.window) for (k, _), j in new.items() if j.role is Role.FIRST}
    c.executemany(
        _FORGET,
        [(k.user_id, k.type, k.object, w - KEEP_WINDOWS) for k, w in opened if w > KEEP_WINDOWS],
    )
    return answers


def _take(
    c: sqlite3.Connection, windows: Sequence[tuple[AggregateKey, int]]
) -> list[WindowSummary | None]:
    states = _states(c, [k for k, _ in windows])
    summaries = [take(states.get(key), number) for key, number in windows]
    _save(c, states)
    return summaries
