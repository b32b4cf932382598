"""``SqliteDatabase.together``: a task's writes as one transaction, and the broker's
``settle`` built on it (the publish joins the first record's commit, the ack the last's)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.broker import SqliteBroker
from clarion.broker import Outbound
from clarion.clock import ManualClock
from tests.sqlite.test_database import Gate, insert_type, write_queue_held


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "clarion.db")
    yield database
    database.close()


def names(path: Path) -> list[str]:
    """What another connection sees committed."""
    with sqlite3.connect(path) as other:
        return sorted(r[0] for r in other.execute("SELECT name FROM notification_types"))


async def test_writes_inside_the_block_commit_together_at_its_end(db: SqliteDatabase) -> None:
    async with db.together():
        await db.write(insert_type("a"))
        await db.write(insert_type("b"))
        assert names(db.path) == []  # nothing committed yet
    assert names(db.path) == ["a", "b"]


async def test_a_block_that_raises_commits_none_of_it(db: SqliteDatabase) -> None:
    async def failing() -> None:
        async with db.together():
            await db.write(insert_type("a"))
            raise RuntimeError("the record failed")

    with pytest.raises(RuntimeError):
        await failing()
    assert names(db.path) == []
    await db.write(insert_type("b"))  # the connection is usable again
    assert names(db.path) == ["b"]


async def test_another_task_waits_for_the_block_and_does_not_join_it(db: SqliteDatabase) -> None:
    inside, release = asyncio.Event(), asyncio.Event()

    async def block() -> None:
        async with db.together():
            await db.write(insert_type("a"))
            inside.set()
            await release.wait()  # a block must not do this; here it shows who waits
            raise RuntimeError("rolled back")

    holder = asyncio.create_task(block())
    await inside.wait()
    writer = asyncio.create_task(db.write(insert_type("b")))
    reader = asyncio.create_task(
        db.read(lambda c: [r[0] for r in c.execute("SELECT name FROM notification_types")])
    )
    await asyncio.sleep(0.05)
    assert not writer.done()
    assert not reader.done()
    release.set()
    with pytest.raises(RuntimeError):
        await holder
    await asyncio.wait_for(writer, 5)
    assert "a" not in await asyncio.wait_for(reader, 5)  # never saw the uncommitted "a"
    assert names(db.path) == ["b"]  # its write was its own, not rolled back with the block


async def test_a_block_with_p0_work_in_hand_skips_the_write_queue(db: SqliteDatabase) -> None:
    db.gate = Gate(urgent_now=True)
    with write_queue_held(db):  # another process's bulk writer holds the flock
        async with asyncio.timeout(5):
            async with db.together():
                await db.write(insert_type("otp"))
    assert names(db.path) == ["otp"]


async def test_settle_commits_the_publish_with_the_first_record_and_the_ack_with_the_last(
    db: SqliteDatabase, clock: ManualClock
) -> None:
    broker = SqliteBroker(db, clock, lease_s=30)
    await broker.publish([Outbound("t.p1", b"claim")])
    claimed = await broker.consume("t.p1", limit=1)

    async def first() -> None:
        await db.write(insert_type("first"))

    async def failing() -> None:
        assert await broker.depth("next.p1") == 1  # the same transaction sees its publish
        raise RuntimeError("store away")

    with pytest.raises(RuntimeError):
        await broker.settle(claimed, [Outbound("next.p1", b"n")], [failing])
    assert await broker.depth("next.p1") == 0  # rolled back with the record
    with pytest.raises(RuntimeError):
        await broker.settle(claimed, [Outbound("next.p1", b"n")], [first, failing])
    assert names(db.path) == ["first"]  # the first commit stands
    assert await broker.depth("next.p1") == 1
    assert await broker.depth("t.p1") == 1  # not acked: the last commit did not happen
    await broker.settle(claimed, [], [])
    assert await broker.depth("t.p1") == 0
