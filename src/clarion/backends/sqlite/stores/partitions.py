"""Precomputed follower partitions (seed 001 Part 6, "the celebrity problem").

A build reads the follower list once, in id order, and cuts it into ``size``-id partitions
whose upper bounds are then fixed for that generation. From the moment a creator has a
partition set, every follow and unfollow is also logged (``follower_changes``, in the same
commit as the change); a refresh applies the log inside the fixed bounds, touching only the
partitions that changed, and deletes what it applied.

A build is consistent without stopping writers: the set row exists before the followers
are read, so any change after the read is logged, and the log entries up to the read
(already reflected in it) are dropped with the build.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.stores.partition_changes import ChangedPartitions
from clarion.stores.records import PartitionSet
from clarion.types import UserId

_READ_CHUNK = 50_000


def _set(c: sqlite3.Connection, creator: UserId) -> PartitionSet | None:
    row = c.execute(
        "SELECT generation, size, followers, built_at, refreshed_at FROM partition_sets"
        " WHERE creator_id = ? AND generation > 0",
        (creator,),
    ).fetchone()
    if row is None:
        return None
    parts = c.execute(
        "SELECT upto, count FROM partitions WHERE creator_id = ? ORDER BY part_no", (creator,)
    ).fetchall()
    uppers = tuple(None if upto is None else UserId(upto) for upto, _ in parts)
    counts = tuple(int(n) for _, n in parts)
    return PartitionSet(creator, row[0], row[1], row[2], row[3], row[4], uppers, counts)


def _chunks(c: sqlite3.Connection, creator: UserId, size: int) -> Iterator[list[str]]:
    after = ""
    chunk: list[str] = []
    while True:
        page = [
            r[0]
            for r in c.execute(
                "SELECT follower_id FROM followers WHERE creator_id = ? AND follower_id > ?"
                " ORDER BY follower_id LIMIT ?",
                (creator, after, _READ_CHUNK),
            )
        ]
        for follower in page:
            chunk.append(follower)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if len(page) < _READ_CHUNK:
            if chunk:
                yield chunk
            return
        after = page[-1]


class SqlitePartitionStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def info(self, creator: UserId) -> PartitionSet | None:
        return await self._db.snapshot(lambda c: _set(c, creator))

    async def creators_over(self, threshold: int) -> list[tuple[UserId, int]]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT creator_id, count FROM follower_counts WHERE count >= ?"
                " ORDER BY count DESC, creator_id",
                (threshold,),
            ).fetchall()
        )
        return [(UserId(r[0]), int(r[1])) for r in rows]

    async def rebuild(self, creator: UserId, *, size: int, now: float) -> PartitionSet:
        # From here on, changes to this creator's followers are logged.
        await self._db.write(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO partition_sets VALUES (?, 0, ?, 0, 0, 0)", (creator, size)
            )
        )

        def _read(c: sqlite3.Connection) -> tuple[int, list[tuple[str | None, bytes, int]], int]:
            logged = c.execute(
                "SELECT coalesce(max(id), 0) FROM follower_changes WHERE creator_id = ?",
                (creator,),
            ).fetchone()[0]
            parts: list[tuple[str | None, bytes, int]] = [
                (chunk[-1], orjson.dumps(chunk), len(chunk)) for chunk in _chunks(c, creator, size)
            ]
            return int(logged), parts, sum(n for _, _, n in parts)

        logged, parts, count = await self._db.snapshot(_read)
        if not parts:
            parts = [(None, b"[]", 0)]
        parts[-1] = (None, *parts[-1][1:])  # the last partition takes every id above the rest

        def _write(c: sqlite3.Connection) -> PartitionSet:
            c.execute("DELETE FROM partitions WHERE creator_id = ?", (creator,))
            c.executemany(
                "INSERT INTO partitions (creator_id, part_no, upto, count, members)"
                " VALUES (?, ?, ?, ?, ?)",
                [(creator, n, upto, size, blob) for n, (upto, blob, size) in enumerate(parts)],
            )
            c.execute(
                "UPDATE partition_sets SET generation = generation + 1, size = ?, followers = ?,"
                " built_at = ?, refreshed_at = ? WHERE creator_id = ?",
                (size, count, now, now, creator),
            )
            c.execute(
                "DELETE FROM follower_changes WHERE creator_id = ? AND id <= ?", (creator, logged)
            )
            found = _set(c, creator)
            assert found is not None
            return found

        return await self._db.write(_write)

    async def refresh(self, creator: UserId, *, now: float) -> tuple[PartitionSet, int]:
        def _apply(c: sqlite3.Connection) -> tuple[PartitionSet, int] | None:
            current = _set(c, creator)
            if current is None:
                return None
            changes = c.execute(
                "SELECT id, follower_id, added FROM follower_changes WHERE creator_id = ?"
                " ORDER BY id",
                (creator,),
            ).fetchall()
            changed = ChangedPartitions(current.uppers, changes)
            before = {n: _members(c, creator, n) for n in changed.touched}
            for part_no, members in changed.apply(before).items():
                c.execute(
                    "UPDATE partitions SET members = ?, count = ?"
                    " WHERE creator_id = ? AND part_no = ?",
                    (orjson.dumps(members), len(members), creator, part_no),
                )
            if changes:
                c.execute(
                    "DELETE FROM follower_changes WHERE creator_id = ? AND id <= ?",
                    (creator, changes[-1][0]),
                )
            c.execute(
                "UPDATE partition_sets SET refreshed_at = ?, followers = (SELECT count FROM"
                " follower_counts WHERE creator_id = ?) WHERE creator_id = ?",
                (now, creator, creator),
            )
            refreshed = _set(c, creator)
            assert refreshed is not None
            return refreshed, len(changes)

        done = await self._db.write(_apply)
        if done is None:
            raise LookupError(f"{creator} has no partitions yet; build them first")
        return done

    async def members(
        self, creator: UserId, generation: int, part_nos: Sequence[int]
    ) -> dict[int, list[UserId]]:
        def _load(c: sqlite3.Connection) -> dict[int, list[UserId]]:
            row = c.execute(
                "SELECT generation FROM partition_sets WHERE creator_id = ?", (creator,)
            ).fetchone()
            if row is None or row[0] != generation:
                return {}
            return {n: _members(c, creator, n) for n in part_nos}

        return await self._db.snapshot(_load)


def _members(c: sqlite3.Connection, creator: UserId, part_no: int) -> list[UserId]:
    row = c.execute(
        "SELECT members FROM partitions WHERE creator_id = ? AND part_no = ?", (creator, part_no)
    ).fetchone()
    return [] if row is None else list(orjson.loads(row[0]))
