"""Aggregation windows (``AggregateStore``) on every implementation: SQLite's write
transaction, PostgreSQL's per-key advisory locks, and Redis's Lua scripts — the same
cases, since the Lua mirrors ``policy.aggregation`` by hand."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest

from clarion.backends.postgres.stores import PostgresAggregateStore
from clarion.backends.sqlite import schema
from clarion.backends.sqlite.stores.aggregates import ANSWERS_KEPT_S
from clarion.clock import ManualClock
from clarion.config import Settings
from clarion.policy.aggregation import (
    AggregateKey,
    JoinRequest,
    Role,
    Window,
    WindowSummary,
    join,
)
from clarion.runtime import Runtime, open_runtime
from clarion.stores.base import AggregateStore
from clarion.types import Seq, UserId
from tests.backends import rows

PHOTO = AggregateKey(UserId("ann"), "like", "photo_1")
OTHER = AggregateKey(UserId("ann"), "like", "photo_2")


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def windows(runtime: Runtime) -> AggregateStore:
    """The store's own implementation (``postgres``: the SQL one; ``redis``: the Lua one)."""
    if runtime._postgres is not None:
        return PostgresAggregateStore(runtime._postgres)
    return runtime.stores.aggregates


def likes(key: AggregateKey, seqs: range, window_s: float = 60.0) -> list[JoinRequest]:
    return [JoinRequest(key, Seq(s), f"fan{s}", window_s) for s in seqs]


async def test_the_first_goes_out_the_rest_are_counted_and_one_schedules_the_summary(
    runtime: Runtime, clock: ManualClock
) -> None:
    store, now = windows(runtime), clock.now()
    answers = await store.join(likes(PHOTO, range(1, 6)) + likes(OTHER, range(6, 7)), now)
    assert [a.role for a in answers] == [Role.FIRST, *[Role.COUNTED] * 4, Role.FIRST]
    assert [a.timer for a in answers] == [False, True, False, False, False, False]
    assert {(a.window, a.ends_at, a.entry) for a in answers[:5]} == {(1, now + 60, 1)}
    assert (answers[4].count, answers[4].actors) == (5, ("fan5", "fan4", "fan3"))
    clock.advance(60)
    (summary, nothing) = await store.take([(PHOTO, 1), (OTHER, 1)])
    assert summary == WindowSummary(1, 4, ("fan5", "fan4"), 5, Seq(1))
    assert nothing is None
    assert await store.take([(PHOTO, 1)]) == [summary]  # the timer fired twice: one summary


async def test_exactly_one_new_is_named_alone_and_nothing_new_is_no_summary(
    runtime: Runtime, clock: ManualClock
) -> None:
    store = windows(runtime)
    await store.join(likes(PHOTO, range(1, 3)), clock.now())
    clock.advance(61)
    (one,) = await store.take([(PHOTO, 1)])
    assert one == WindowSummary(1, 1, ("fan2",), 2, Seq(1))
    (first,) = await store.join(likes(PHOTO, range(3, 4)), clock.now())  # a new window
    assert (first.role, first.window, first.entry, first.count) == (Role.FIRST, 2, 1, 3)
    clock.advance(61)
    assert await store.take([(PHOTO, 2)]) == [None]


async def test_a_redelivered_claim_gets_its_first_answers_again(
    runtime: Runtime, clock: ManualClock
) -> None:
    store = windows(runtime)
    first = await store.join(likes(PHOTO, range(1, 4)), clock.now())
    clock.advance(5)
    again = await store.join(likes(PHOTO, range(1, 5)), clock.now())
    assert again[:3] == first
    assert (again[3].role, again[3].count, again[3].timer) == (Role.COUNTED, 4, False)


async def test_two_processes_joining_one_key_at_once_open_one_window_and_one_summary(
    runtime: Runtime, settings: Settings, clock: ManualClock
) -> None:
    other = open_runtime(settings, clock=clock)
    try:
        mine, theirs = windows(runtime), windows(other)
        rounds = [
            asyncio.gather(
                mine.join(likes(PHOTO, range(n, n + 5)), clock.now()),
                theirs.join(likes(PHOTO, range(n + 500, n + 505)), clock.now()),
            )
            for n in range(1, 200, 5)
        ]
        answers = [a for pair in await asyncio.gather(*rounds) for side in pair for a in side]
    finally:
        await other.close()
    assert sum(a.role is Role.FIRST for a in answers) == 1
    assert sum(a.timer for a in answers) == 1
    assert max(a.count for a in answers) == len(answers) == 400
    clock.advance(60)
    (summary,) = await mine.take([(PHOTO, 1)])
    assert summary is not None
    assert (summary.count, summary.total) == (399, 400)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_answers_outlive_a_claims_retries_then_are_forgotten(
    runtime: Runtime, clock: ManualClock
) -> None:
    store = windows(runtime)
    first = await store.join(likes(PHOTO, range(1, 4)), clock.now())
    clock.advance(ANSWERS_KEPT_S - 1)
    assert (await store.join(likes(PHOTO, range(1, 4)), clock.now())) == first
    clock.advance(2)
    await store.join(likes(OTHER, range(10, 11)), clock.now())  # files one, forgets the old
    assert await rows(runtime, "SELECT seq FROM aggregate_answers") == [(10,)]


async def test_answers_filed_before_version_12_still_answer_a_redelivery(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Version 12 moves the answers to a table in arrival order; a claim in flight across
    the upgrade still gets its first answers."""
    path = tmp_path / "v11.db"
    window, now = Window(), clock.now()
    answers = [join(window, request, now) for request in likes(PHOTO, range(1, 3))]
    with sqlite3.connect(path) as conn:
        for version, script in enumerate(schema.MIGRATIONS[:11], start=1):
            for statement in schema._statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
        conn.execute(
            "INSERT INTO aggregates VALUES ('ann', 'like', 'photo_1', ?)",
            (orjson.dumps(window.to_json()).decode(),),
        )
        conn.executemany(
            "INSERT INTO aggregate_members VALUES ('ann', 'like', 'photo_1', ?, 1, ?)",
            [(n, orjson.dumps(a.to_json()).decode()) for n, a in enumerate(answers, start=1)],
        )
    runtime = open_runtime(Settings(db=path), clock=clock)
    try:
        again = await runtime.stores.aggregates.join(likes(PHOTO, range(1, 4)), clock.now())
    finally:
        await runtime.close()
    assert again[:2] == answers
    assert (again[2].role, again[2].count) == (Role.COUNTED, 3)
