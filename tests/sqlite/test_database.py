"""The shared SQLite file's write path: who queues for the lock, who goes first, who
checkpoints, and who flushes the WAL."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from clarion.backends.sqlite import SqliteDatabase, database, walflush


@dataclass
class Gate:
    """A scripted ``WriteGate``."""

    urgent_now: bool = False
    yields: bool = False
    turns: int = 0
    asked: int = 0

    def urgent(self) -> bool:
        return self.urgent_now

    async def wait_turn(self) -> None:
        self.turns += 1

    def should_yield(self) -> bool:
        self.asked += 1
        return self.yields


@contextmanager
def write_queue_held(db: SqliteDatabase) -> Iterator[None]:
    """Another process's writer holding the ``flock`` (a checkpoint running in its
    commit, say)."""
    fd = os.open(db.path.with_name(db.path.name + ".lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "clarion.db"


def insert_type(name: str) -> Callable[[sqlite3.Connection], None]:
    def _insert(c: sqlite3.Connection) -> None:
        c.execute(
            "INSERT INTO notification_types (name, spec, updated_at) VALUES (?, '{}', 0)", (name,)
        )

    return _insert


def elsewhere(db: SqliteDatabase, name: str) -> asyncio.Future[None]:
    """``db`` writes from its own thread, as another process would: waiting for the
    ``flock`` blocks that thread, not this event loop."""
    return asyncio.ensure_future(asyncio.to_thread(asyncio.run, db.write(insert_type(name))))


async def test_p0_writes_skip_the_queue_that_bulk_writes_wait_in(path: Path) -> None:
    bulk, api = SqliteDatabase(path), SqliteDatabase(path, synchronous="FULL")
    gate = Gate(urgent_now=True)
    api.gate = gate
    try:
        with write_queue_held(bulk):
            queued = elsewhere(bulk, "promo")
            await asyncio.wait_for(elsewhere(api, "otp"), 5)
            await asyncio.sleep(0.05)
            assert not queued.done()  # still waiting for the flock
        await asyncio.wait_for(queued, 5)
        gate.urgent_now = False
        with write_queue_held(bulk):
            after = elsewhere(api, "digest")
            await asyncio.sleep(0.05)
            assert not after.done()  # nothing urgent in hand: it queues like the rest
        await asyncio.wait_for(after, 5)
        names = await bulk.read(
            lambda c: [r[0] for r in c.execute("SELECT name FROM notification_types")]
        )
        assert sorted(names) == ["digest", "otp", "promo"]
    finally:
        bulk.close()
        api.close()


async def test_a_p0_write_waits_for_the_transaction_in_progress_then_goes(path: Path) -> None:
    db = SqliteDatabase(path)
    db.gate = Gate(urgent_now=True)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a bulk batch mid-transaction
        other.execute(
            "INSERT INTO notification_types (name, spec, updated_at) VALUES ('promo', '{}', 0)"
        )
        writing = asyncio.create_task(db.write(insert_type("otp")))
        await asyncio.sleep(0.05)
        assert not writing.done()
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
        assert (
            await db.read(
                lambda c: c.execute("SELECT count(*) FROM notification_types").fetchone()[0]
            )
            == 2
        )
    finally:
        other.close()
        db.close()


async def test_a_p0_write_gives_up_like_sqlite_does_when_the_lock_never_frees(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "URGENT_WAIT_S", 0.05)
    db = SqliteDatabase(path)
    db.gate = Gate(urgent_now=True)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await db.write(insert_type("otp"))
        other.execute("ROLLBACK")
        # The busy handler is back for everything else: a plain write waits, then goes.
        await db.write(insert_type("otp"))
    finally:
        other.close()
        db.close()


async def test_a_queued_bulk_writer_hands_the_lock_back_once(path: Path) -> None:
    db = SqliteDatabase(path)
    gate = Gate(yields=True)  # P0 work began elsewhere while this writer queued
    db.gate = gate
    try:
        await db.write(insert_type("promo"))
        # Handed back once (and waited its turn again), then wrote: never starved.
        assert (gate.turns, gate.asked) == (2, 1)
        assert (
            await db.read(
                lambda c: c.execute("SELECT count(*) FROM notification_types").fetchone()[0]
            )
            == 1
        )
        gate.yields = False
        await db.write(insert_type("digest"))
        assert (gate.turns, gate.asked) == (3, 2)
    finally:
        db.close()


def test_bulk_handles_checkpoint_often_and_the_urgent_path_only_as_a_backstop(
    path: Path,
) -> None:
    bulk, urgent = SqliteDatabase(path), SqliteDatabase(path, checkpoints=False)
    try:
        pages = [
            asyncio.run(db.read(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]))
            for db in (bulk, urgent)
        ]
        assert pages == [database.BULK_CHECKPOINT_PAGES, database.BACKSTOP_CHECKPOINT_PAGES]
    finally:
        bulk.close()
        urgent.close()


@pytest.fixture
def flushed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The inode of every file fdatasync'ed from now on."""
    inodes: list[int] = []
    real = os.fdatasync

    def recording(fd: int) -> None:
        inodes.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", recording)
    return inodes


async def test_bulk_commits_are_flushed_from_the_wal_by_a_helper_thread(
    path: Path, flushed: list[int]
) -> None:
    bulk = SqliteDatabase(path)
    api = SqliteDatabase(path, synchronous="FULL", checkpoints=False)
    try:
        await api.write(insert_type("otp"))
        assert flushed == []  # the API's commits fsync themselves
        await bulk.write(insert_type("promo"))
        await asyncio.sleep(0.1)  # the helper thread's turn
        wal = path.with_name(path.name + "-wal")
        assert flushed == [wal.stat().st_ino]
    finally:
        bulk.close()
        api.close()


async def test_the_flusher_follows_the_wal_when_sqlite_recreates_it(
    path: Path, flushed: list[int]
) -> None:
    flusher = walflush.WalFlusher(path)
    flusher.after_commit()
    await asyncio.sleep(0.05)
    assert flushed == []  # no WAL yet: nothing to flush
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes(b"frames")
    flusher.after_commit()
    await asyncio.sleep(0.05)
    first = wal.stat().st_ino
    old = os.open(wal, os.O_RDONLY)  # so the new file cannot reuse its inode number
    wal.unlink()  # the last connection closed
    wal.write_bytes(b"new frames")
    flusher.after_commit()
    await asyncio.sleep(0.05)
    os.close(old)
    assert flushed == [first, wal.stat().st_ino]
    assert first != wal.stat().st_ino
    flusher.close()
    flusher.after_commit()
    await asyncio.sleep(0.05)
    assert len(flushed) == 2  # closed: no more flushes


async def test_p0_commits_leave_wal_checkpoints_to_bulk_work(path: Path) -> None:
    db = SqliteDatabase(path)  # a general worker's handle: it checkpoints bulk commits
    gate = Gate(urgent_now=True)
    db.gate = gate
    wal = path.with_name(path.name + "-wal")
    big = "x" * 1_000_000
    page = 4096

    def insert_big(n: int) -> Callable[[sqlite3.Connection], None]:
        return lambda c: c.execute(
            "INSERT INTO notification_types VALUES (?, ?, 0)", (f"t{n}", big)
        ).close()

    try:
        for n in range(12):  # ~3,000 pages, three times the checkpoint threshold
            await db.write(insert_big(n))
        assert wal.stat().st_size > 2 * database.BULK_CHECKPOINT_PAGES * page
        pages = await db.read(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        assert pages == database.BULK_CHECKPOINT_PAGES  # restored for bulk commits
        gate.urgent_now = False
        await db.write(insert_big(12))  # bulk: its commit checkpoints the lot
        await db.write(insert_type("promo"))  # so the WAL starts over
        _, frames, _ = await db.read(
            lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        )
        assert frames < database.BULK_CHECKPOINT_PAGES
    finally:
        db.close()
