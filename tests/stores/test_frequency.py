"""Frequency-cap places (``FrequencyStore.reserve``) on every implementation: SQLite's
write transaction, PostgreSQL's per-person advisory locks, and Redis's Lua script."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from clarion.backends.postgres.stores import PostgresFrequencyStore
from clarion.backends.sqlite import schema
from clarion.clock import ManualClock
from clarion.config import Settings
from clarion.policy.frequency import UNDER, CapCheck, FrequencyCaps, SlotRequest
from clarion.runtime import Runtime, open_runtime
from clarion.stores.base import FrequencyStore
from clarion.types import Seq, UserId
from tests.backends import rows

T = TypeVar("T")
ANN, BOB = UserId("ann"), UserId("bob")
HOURLY = FrequencyCaps(per_hour=3)


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def places(runtime: Runtime) -> FrequencyStore:
    """The store's own implementation (``postgres``: the SQL one, which Redis fronts)."""
    if runtime._postgres is not None:
        return PostgresFrequencyStore(runtime._postgres)
    return runtime.stores.frequency


def asks(user: UserId, seqs: range, caps: FrequencyCaps = HOURLY) -> list[SlotRequest]:
    return [SlotRequest(user, Seq(s), caps) for s in seqs]


async def test_many_requests_for_one_person_in_one_call_take_places_in_order(
    runtime: Runtime, clock: ManualClock
) -> None:
    now = clock.now()
    answers = await places(runtime).reserve(asks(ANN, range(1, 6)) + asks(BOB, range(1, 3)), now)
    full = CapCheck(over_hour=True, hour_frees_at=now + 3600)
    assert answers == [UNDER, UNDER, UNDER, full, full, UNDER, UNDER]


async def test_a_redelivered_request_gets_its_place_again_and_counts_once(
    runtime: Runtime, clock: ManualClock
) -> None:
    store = places(runtime)
    assert await store.reserve(asks(ANN, range(1, 3)), clock.now()) == [UNDER, UNDER]
    clock.advance(10)
    assert await store.reserve(asks(ANN, range(1, 4)), clock.now()) == [UNDER] * 3
    (fourth,) = await store.reserve(asks(ANN, range(4, 5)), clock.now())
    assert fourth.over_hour
    assert len((await store.recent([ANN], clock.now() - 3600))[ANN]) == 3


async def test_the_hour_frees_when_its_oldest_place_turns_an_hour_old(
    runtime: Runtime, clock: ManualClock
) -> None:
    store, start = places(runtime), clock.now()
    for seq in (1, 2, 3):
        await store.reserve(asks(ANN, range(seq, seq + 1)), clock.now())
        clock.advance(60)
    (refused,) = await store.reserve(asks(ANN, range(4, 5)), clock.now())
    assert refused.hour_frees_at == pytest.approx(start + 3600)
    clock.set(start + 3600.5)
    assert await store.reserve(asks(ANN, range(4, 5)), clock.now()) == [UNDER]


async def test_the_daily_cap_and_p0_which_passes_but_counts(
    runtime: Runtime, clock: ManualClock
) -> None:
    store, daily = places(runtime), FrequencyCaps(per_day=2)
    otp = SlotRequest(ANN, Seq(1), daily, force=True)
    answers = await store.reserve([otp, *asks(ANN, range(2, 4), daily)], clock.now())
    assert answers == [UNDER, UNDER, CapCheck(over_day=True)]
    forced = await store.reserve([SlotRequest(ANN, Seq(9), daily, force=True)], clock.now())
    assert forced == [UNDER]
    clock.advance(86_400.5)
    assert await store.reserve(asks(ANN, range(3, 4), daily), clock.now()) == [UNDER]


async def test_two_processes_racing_for_one_person_never_share_the_last_place(
    runtime: Runtime, settings: Settings, clock: ManualClock
) -> None:
    other = open_runtime(settings, clock=clock)
    try:
        mine, theirs = places(runtime), places(other)
        rounds = [
            asyncio.gather(
                mine.reserve(asks(ANN, range(n, n + 2)), clock.now()),
                theirs.reserve(asks(ANN, range(n + 100, n + 102)), clock.now()),
            )
            for n in range(0, 20, 2)
        ]
        answers = [a for pair in await asyncio.gather(*rounds) for side in pair for a in side]
    finally:
        await other.close()
    assert sum(a.room for a in answers) == 3
    assert len((await mine.recent([ANN], clock.now() - 60))[ANN]) == 3


async def test_a_place_taken_between_the_read_and_the_lock_is_seen_sqlite(
    backend: str,
    runtime: Runtime,
    settings: Settings,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite decides before it takes the write lock: another process taking the last place
    between that read and the lock must make it decide again, under the lock."""
    if backend != "sqlite" or runtime._sqlite is None:
        pytest.skip("the optimistic read is the embedded store's")
    other = open_runtime(settings, clock=clock)
    hourly = FrequencyCaps(per_hour=1)
    read = runtime._sqlite.read

    async def read_then_the_other_process_reserves(fn: Callable[[Any], T]) -> T:
        found = await read(fn)
        assert await places(other).reserve(asks(ANN, range(7, 8), hourly), clock.now()) == [UNDER]
        return found

    monkeypatch.setattr(runtime._sqlite, "read", read_then_the_other_process_reserves)
    try:
        (answer,) = await places(runtime).reserve(asks(ANN, range(1, 2), hourly), clock.now())
    finally:
        monkeypatch.undo()
        await other.close()
    assert answer.over_hour
    assert len((await places(runtime).recent([ANN], clock.now() - 60))[ANN]) == 1


async def test_places_kept_one_row_each_carry_over_into_one_row_per_person(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Schema version 11 folds version 4's row per place into a row per person."""
    path = tmp_path / "v10.db"
    with sqlite3.connect(path) as conn:
        for version, script in enumerate(schema.MIGRATIONS[:10], start=1):
            for statement in schema._statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
        now = clock.now()
        conn.executemany(
            "INSERT INTO frequency_slots VALUES (?, ?, ?)",
            [
                ("ann", 1, now - 7200.25),
                ("ann", 2, now - 60.5),
                ("bob", -1, now - 30),
                ("cy", 5, now - 90_000),  # more than a day ago
            ],
        )
    runtime = open_runtime(Settings(db=path), clock=clock)
    try:
        store = runtime.stores.frequency
        recent = await store.recent([ANN, BOB, UserId("cy")], now - 86_400)
        assert recent == {ANN: [now - 7200.25, now - 60.5], BOB: [now - 30]}
        hourly = FrequencyCaps(per_hour=1)
        assert await store.reserve(asks(ANN, range(1, 4), hourly), now) == [
            UNDER,  # events 1 and 2 hold their places already
            UNDER,
            CapCheck(over_hour=True, hour_frees_at=now - 60.5 + 3600),
        ]
        assert await store.reserve(asks(UserId("cy"), range(6, 7), hourly), now) == [UNDER]
        kept = await rows(runtime, "SELECT places FROM frequency_places WHERE user_id = 'cy'")
        assert kept == [(f"[6,{now}]",)]  # the day-old place was dropped when it wrote
    finally:
        await runtime.close()
