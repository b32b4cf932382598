"""``clarion slo`` counts the deliveries of its window and no others, on every backend. On
SQLite it finds the window by bisecting the delivery log (it has no index on time): a row
whose writer read its clock before waiting for the write lock is logged after newer ones,
and still counts in its own window."""

from __future__ import annotations

import pytest

from clarion.backends.sqlite.stores.deliveries import _SLO
from clarion.models import Priority
from clarion.runtime import Runtime
from tests.backends import insert_many, rows

START = 1_000_000.0


async def _delivered_at(runtime: Runtime, times: list[float]) -> None:
    """One P0 event per time, delivered then (in time), logged in the order given."""
    await insert_many(
        runtime,
        "INSERT INTO events (seq, event_id, sender, type, priority, fan_out, title, body,"
        " payload, created_at, expires_at, state)"
        " VALUES (?, ?, 'app', 'otp', 'P0', 'direct', '', '', '{}', ?, 9e9, 'done')",
        [(n, f"evt_{n}", at) for n, at in enumerate(times, start=1)],
    )
    await insert_many(
        runtime,
        "INSERT INTO deliveries (id, user_id, seq, channel, attempt, outcome, at)"
        " VALUES (?, 'ann', ?, 'sms', 1, 'delivered', ?)",
        [(n, n, at) for n, at in enumerate(times, start=1)],
    )


async def _in_time(runtime: Runtime, since: float, until: float) -> int:
    counts = await runtime.stores.deliveries.slo_counts(since, until)
    (p0,) = (c for c in counts if c.priority is Priority.P0)
    return p0.in_time


async def test_a_window_counts_its_own_rows(runtime: Runtime) -> None:
    times = [START + 10 * n for n in range(1_000)]  # one every ten seconds
    late = START + 10 * 590 - 125  # logged 22 rows later: its writer waited for the lock
    times.insert(600, late)
    await _delivered_at(runtime, times)

    assert await _in_time(runtime, START, START + 10_000) == 1_001
    assert await _in_time(runtime, START + 10 * 500, START + 10 * 600) == 101
    assert await _in_time(runtime, late, late + 1) == 1
    assert await _in_time(runtime, START - 100, START) == 0
    assert await _in_time(runtime, START + 20_000, START + 30_000) == 0


async def test_an_empty_log_counts_nothing(runtime: Runtime) -> None:
    assert await _in_time(runtime, 0, 9e9) == 0


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL partitions the log by day
async def test_sqlite_reads_only_the_window(runtime: Runtime) -> None:
    plan = await rows(runtime, "EXPLAIN QUERY PLAN " + _SLO, 0, 1, 1, 10, 5, 9)
    details = " ".join(str(r[-1]) for r in plan)
    assert "deliveries" in details
    assert "INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in details
