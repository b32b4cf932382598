"""Precomputed follower partitions (seed 001 Part 6), as in ``backends.sqlite.stores.partitions``:
fixed upper bounds per generation, follows and unfollows logged from the moment a set
exists and applied inside those bounds by a refresh. Members are a ``text[]`` per row."""

from __future__ import annotations

from collections.abc import Sequence

from clarion.backends.postgres import Connection, PostgresDatabase
from clarion.stores.partition_changes import ChangedPartitions
from clarion.stores.records import PartitionSet
from clarion.types import UserId

_READ_CHUNK = 50_000


async def _set(c: Connection, creator: UserId) -> PartitionSet | None:
    row = await c.fetchrow(
        "SELECT generation, size, followers, built_at, refreshed_at FROM partition_sets"
        " WHERE creator_id = $1 AND generation > 0",
        creator,
    )
    if row is None:
        return None
    parts = await c.fetch(
        "SELECT upto, count FROM partitions WHERE creator_id = $1 ORDER BY part_no", creator
    )
    uppers = tuple(None if p[0] is None else UserId(p[0]) for p in parts)
    counts = tuple(int(p[1]) for p in parts)
    return PartitionSet(creator, row[0], row[1], row[2], row[3], row[4], uppers, counts)


class PostgresPartitionStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def info(self, creator: UserId) -> PartitionSet | None:
        async with self._db.transaction() as c:
            return await _set(c, creator)

    async def creators_over(self, threshold: int) -> list[tuple[UserId, int]]:
        rows = await self._db.fetch(
            "SELECT creator_id, count FROM follower_counts WHERE count >= $1"
            " ORDER BY count DESC, creator_id",
            threshold,
        )
        return [(UserId(r[0]), int(r[1])) for r in rows]

    async def rebuild(self, creator: UserId, *, size: int, now: float) -> PartitionSet:
        # From here on, changes to this creator's followers are logged.
        await self._db.execute(
            "INSERT INTO partition_sets VALUES ($1, 0, $2, 0, 0, 0) ON CONFLICT DO NOTHING",
            creator,
            size,
        )
        parts: list[tuple[str | None, list[str]]] = []
        async with self._db.transaction() as c:
            await c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            logged = await c.fetchval(
                "SELECT coalesce(max(id), 0) FROM follower_changes WHERE creator_id = $1",
                creator,
            )
            chunk: list[str] = []
            async for row in c.cursor(
                "SELECT follower_id FROM followers WHERE creator_id = $1 ORDER BY follower_id",
                creator,
                prefetch=_READ_CHUNK,
            ):
                chunk.append(row[0])
                if len(chunk) == size:
                    parts.append((chunk[-1], chunk))
                    chunk = []
            if chunk or not parts:
                parts.append((None, chunk))
        parts[-1] = (None, parts[-1][1])  # the last partition takes every id above the rest
        async with self._db.transaction() as c:
            await c.execute("DELETE FROM partitions WHERE creator_id = $1", creator)
            await c.executemany(
                "INSERT INTO partitions (creator_id, part_no, upto, count, members)"
                " VALUES ($1, $2, $3, $4, $5)",
                [(creator, n, upto, len(m), m) for n, (upto, m) in enumerate(parts)],
            )
            await c.execute(
                "UPDATE partition_sets SET generation = generation + 1, size = $2,"
                " followers = $3, built_at = $4, refreshed_at = $4 WHERE creator_id = $1",
                creator,
                size,
                sum(len(m) for _, m in parts),
                now,
            )
            await c.execute(
                "DELETE FROM follower_changes WHERE creator_id = $1 AND id <= $2", creator, logged
            )
            found = await _set(c, creator)
        assert found is not None
        return found

    async def refresh(self, creator: UserId, *, now: float) -> tuple[PartitionSet, int]:
        async with self._db.transaction() as c:
            locked = await c.fetchval(
                "SELECT generation FROM partition_sets WHERE creator_id = $1 AND generation > 0"
                " FOR UPDATE",
                creator,
            )
            current = None if locked is None else await _set(c, creator)
            if current is None:
                raise LookupError(f"{creator} has no partitions yet; build them first")
            changes = await c.fetch(
                "SELECT id, follower_id, added FROM follower_changes WHERE creator_id = $1"
                " ORDER BY id",
                creator,
            )
            changed = ChangedPartitions(current.uppers, changes)
            before = {n: await _members(c, creator, n) for n in changed.touched}
            await c.executemany(
                "UPDATE partitions SET members = $3, count = $4"
                " WHERE creator_id = $1 AND part_no = $2",
                [(creator, n, m, len(m)) for n, m in changed.apply(before).items()],
            )
            if changes:
                await c.execute(
                    "DELETE FROM follower_changes WHERE creator_id = $1 AND id <= $2",
                    creator,
                    changes[-1][0],
                )
            await c.execute(
                "UPDATE partition_sets SET refreshed_at = $2, followers = (SELECT count FROM"
                " follower_counts WHERE creator_id = $1) WHERE creator_id = $1",
                creator,
                now,
            )
            refreshed = await _set(c, creator)
        assert refreshed is not None
        return refreshed, len(changes)

    async def members(
        self, creator: UserId, generation: int, part_nos: Sequence[int]
    ) -> dict[int, list[UserId]]:
        rows = await self._db.fetch(
            "SELECT p.part_no, p.members FROM partitions p JOIN partition_sets s"
            " ON s.creator_id = p.creator_id WHERE p.creator_id = $1 AND s.generation = $2"
            " AND p.part_no = ANY($3::int[])",
            creator,
            generation,
            list(part_nos),
        )
        return {r[0]: [UserId(m) for m in r[1]] for r in rows}


async def _members(c: Connection, creator: UserId, part_no: int) -> list[str]:
    found = await c.fetchval(
        "SELECT members FROM partitions WHERE creator_id = $1 AND part_no = $2", creator, part_no
    )
    return [] if found is None else list(found)
