"""Aggregation windows in the SQLite file: one state row per key and one row per
notification's answer. ``join`` and ``take`` read and write inside one write transaction,
and SQLite has one writer at a time across every process sharing the file: that is what
makes them atomic (``policy.aggregation``).

Answers are filed by event, in arrival order, and kept for ``ANSWERS_KEPT_S`` (schema
version 12 says why): an answer only serves a redelivered claim, which comes back within
its retries, however long the type's window is."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.policy.aggregation import (
    AggregateKey,
    Joined,
    JoinRequest,
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
_ANSWERS = (
    "WITH k AS MATERIALIZED (SELECT value ->> 0 AS s, value ->> 1 AS u, value ->> 2 AS t,"
    " value ->> 3 AS o FROM json_each(?))"
    " SELECT m.user_id, m.type, m.object, m.seq, m.joined FROM k JOIN aggregate_answers m"
    " ON m.seq = k.s AND m.user_id = k.u AND m.type = k.t AND m.object = k.o"
)
_SAVE = (
    "INSERT INTO aggregates (user_id, type, object, state) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (user_id, type, object) DO UPDATE SET state = excluded.state"
)
_REMEMBER = (
    "INSERT OR IGNORE INTO aggregate_answers (seq, user_id, type, object, joined, at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_FORGET = (
    "DELETE FROM aggregate_answers"
    " WHERE id < (SELECT min(id) FROM aggregate_answers) + ? AND at < ?"
)

ANSWERS_KEPT_S = 900.0
"""Well past a claim's last retry (five attempts: leases of 30 s, back-off capped at 60 s)."""


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
    wanted = orjson.dumps([[r.seq, r.key.user_id, r.key.type, r.key.object] for r in requests])
    answers_before = {
        (_key(row), Seq(row[3])): Joined.from_json(orjson.loads(row[4]))
        for row in c.execute(_ANSWERS, (wanted,))
    }
    answers, changed, new = join_all(requests, windows, answers_before, now)
    _save(c, changed)
    c.executemany(
        _REMEMBER,
        [
            (seq, k.user_id, k.type, k.object, orjson.dumps(j.to_json()), now)
            for (k, seq), j in new.items()
        ],
    )
    # Forget at least as many as were filed, oldest first: the table stays the size of
    # ANSWERS_KEPT_S of traffic.
    c.execute(_FORGET, (2 * len(new) + 100, now - ANSWERS_KEPT_S))
    return answers


def _take(
    c: sqlite3.Connection, windows: Sequence[tuple[AggregateKey, int]]
) -> list[WindowSummary | None]:
    states = _states(c, [k for k, _ in windows])
    summaries = [take(states.get(key), number) for key, number in windows]
    _save(c, states)
    return summaries
