"""Replaying a person's stream, on both databases: pages from anywhere in a long stream,
other people's entries never mixed in, a lapsed stream forgotten whole. On SQLite a stream
is a chain through the log with a mark every ``MARK_EVERY`` positions
(``backends.sqlite.stores.live``): a page that ends between marks, a chain broken by a
lost entry (a reset, never a silent gap), marks pruned with their entries, and a file
written before the chain (schema 12) replaying after the upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from clarion.backends.sqlite import schema
from clarion.backends.sqlite.stores.live import MARK_EVERY
from clarion.clock import ManualClock
from clarion.config import Settings
from clarion.live.log import ACTIVE_S, KEEP, KEEP_S, Entry, Kind, Post
from clarion.runtime import Runtime, open_runtime
from clarion.types import UserId
from tests.backends import rows

ANN, BOB = UserId("ann"), UserId("bob")
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])
"""Chains and marks are SQLite's own: PostgreSQL reads a stream by its per-person index."""


async def _append(runtime: Runtime, clock: ManualClock, count: int) -> None:
    """``count`` entries for each of Ann and Bob, interleaved (``{"n": 1…}``)."""
    posts = [Post(u, Kind.STATE, {"n": n}) for n in range(1, count + 1) for u in (ANN, BOB)]
    for at in range(0, len(posts), 250):
        await runtime.stores.streams.append(posts[at : at + 250], clock.now())


def _ns(entries: list[Entry]) -> list[int]:
    return [int(e.body["n"]) for e in entries]


async def test_pages_from_anywhere_in_a_long_stream(runtime: Runtime, clock: ManualClock) -> None:
    streams = runtime.stores.streams
    head = await streams.activate(ANN, clock.now())
    await streams.activate(BOB, clock.now())
    await _append(runtime, clock, 3 * MARK_EVERY + 5)
    for after, limit in ((0, 10), (10, 100), (MARK_EVERY - 1, 1), (MARK_EVERY, MARK_EVERY),
                         (200, KEEP), (3 * MARK_EVERY + 4, KEEP)):  # fmt: skip
        replay = await streams.replay(ANN, (head.epoch, after), limit=limit)
        upto = min(after + limit, 3 * MARK_EVERY + 5)
        assert replay.reset is None
        assert _ns(replay.entries) == list(range(after + 1, upto + 1))
        assert [e.pos for e in replay.entries] == list(range(after + 1, upto + 1))
        assert {e.user_id for e in replay.entries} <= {ANN}


async def test_a_lapsed_stream_starts_anew_and_its_old_entries_are_pruned(
    runtime: Runtime, clock: ManualClock
) -> None:
    streams = runtime.stores.streams
    old = await streams.activate(ANN, clock.now())
    bob = await streams.activate(BOB, clock.now())
    await _append(runtime, clock, MARK_EVERY + 3)
    clock.advance(ACTIVE_S / 2)
    await streams.activate(BOB, clock.now())  # Bob's device is still about; Ann's is not
    clock.advance(ACTIVE_S / 2 + 1)
    fresh = await streams.activate(ANN, clock.now())
    assert fresh.epoch != old.epoch
    await streams.append([Post(ANN, Kind.STATE, {"n": 1})], clock.now())
    assert _ns((await streams.replay(ANN, (fresh.epoch, 0))).entries) == [1]
    assert (await streams.replay(ANN, (old.epoch, 3))).reset is not None
    await streams.prune(clock.now())
    assert await rows(runtime, "SELECT count(*) FROM stream_log WHERE user_id = ?", ANN) == [(1,)]
    kept = await streams.replay(BOB, (bob.epoch, 3))  # a day old, but not KEEP behind
    assert _ns(kept.entries) == list(range(4, MARK_EVERY + 4))


@SQLITE_ONLY
async def test_a_broken_chain_resets_instead_of_skipping(
    runtime: Runtime, clock: ManualClock
) -> None:
    streams = runtime.stores.streams
    head = await streams.activate(ANN, clock.now())
    await _append(runtime, clock, 20)
    await rows(runtime, "DELETE FROM stream_log WHERE user_id = ? AND pos = 8", ANN)
    assert (await streams.replay(ANN, (head.epoch, 5))).reset is not None
    assert _ns((await streams.replay(ANN, (head.epoch, 8))).entries) == list(range(9, 21))


@SQLITE_ONLY
async def test_marks_go_with_their_entries(runtime: Runtime, clock: ManualClock) -> None:
    streams = runtime.stores.streams
    head = await streams.activate(ANN, clock.now())
    await _append(runtime, clock, KEEP + 2 * MARK_EVERY)
    marks = await rows(runtime, "SELECT pos FROM stream_marks WHERE user_id = ? ORDER BY pos", ANN)
    assert [p for (p,) in marks] == list(range(MARK_EVERY, KEEP + 2 * MARK_EVERY + 1, MARK_EVERY))
    clock.advance(KEEP_S / 2)
    await streams.activate(ANN, clock.now())
    clock.advance(KEEP_S / 2 + 1)
    assert await streams.prune(clock.now()) > 0
    marks = await rows(runtime, "SELECT pos FROM stream_marks WHERE user_id = ? ORDER BY pos", ANN)
    assert min(p for (p,) in marks) > 2 * MARK_EVERY  # those of the pruned entries are gone
    tail = await streams.replay(ANN, (head.epoch, KEEP + MARK_EVERY), limit=10)
    assert _ns(tail.entries) == list(range(KEEP + MARK_EVERY + 1, KEEP + MARK_EVERY + 11))


async def test_a_stream_written_before_version_13_replays_after_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Version 13 turns the per-person index into chains and marks: a device resuming
    across the upgrade gets what it missed."""
    path = tmp_path / "v12.db"
    with sqlite3.connect(path) as conn:
        for version, script in enumerate(schema.MIGRATIONS[:12], start=1):
            for statement in schema._statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
        for user in (ANN, BOB):
            conn.execute(
                "INSERT INTO stream_heads VALUES (?, 'e1', ?, ?)",
                (user, MARK_EVERY + 2, clock.now() + ACTIVE_S),
            )
        conn.executemany(
            "INSERT INTO stream_log (user_id, epoch, pos, kind, body, at)"
            " VALUES (?, 'e1', ?, 'state', ?, ?)",
            [
                (user, n, f'{{"n": {n}}}', clock.now())
                for n in range(1, MARK_EVERY + 3)
                for user in (ANN, BOB)
            ],
        )
    runtime = open_runtime(Settings(db=path), clock=clock)
    try:
        streams = runtime.stores.streams
        missed = await streams.replay(ANN, ("e1", 5), limit=10)
        await streams.append([Post(ANN, Kind.STATE, {"n": MARK_EVERY + 3})], clock.now())
        tail = await streams.replay(ANN, ("e1", MARK_EVERY), limit=KEEP)
    finally:
        await runtime.close()
    assert _ns(missed.entries) == list(range(6, 16))
    assert _ns(tail.entries) == [MARK_EVERY + 1, MARK_EVERY + 2, MARK_EVERY + 3]
