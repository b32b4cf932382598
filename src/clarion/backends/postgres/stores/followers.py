"""The follower graph: ``(creator, follower)`` pairs, paged by follower id.

A chunk of ids is one statement (``unnest`` of an array), and the per-creator count is kept
in step in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from clarion.backends.postgres import Connection, PostgresDatabase
from clarion.types import UserId


class PostgresFollowerStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def add(self, creator: UserId, followers: Sequence[UserId]) -> int:
        if not followers:
            return 0
        async with self._db.transaction() as c:
            added = await c.fetchval(
                "WITH n AS (INSERT INTO followers (creator_id, follower_id)"
                " SELECT $1, f FROM unnest($2::text[]) f ON CONFLICT DO NOTHING RETURNING 1)"
                " SELECT count(*) FROM n",
                creator,
                list(followers),
            )
            await _bump(c, creator, added)
            await _log_changes(c, creator, followers, added=True)
            return int(added)

    async def remove(self, creator: UserId, followers: Sequence[UserId]) -> int:
        if not followers:
            return 0
        async with self._db.transaction() as c:
            removed = await c.fetchval(
                "WITH d AS (DELETE FROM followers WHERE creator_id = $1"
                " AND follower_id = ANY($2::text[]) RETURNING 1) SELECT count(*) FROM d",
                creator,
                list(followers),
            )
            await _bump(c, creator, -removed)
            await _log_changes(c, creator, followers, added=False)
            return int(removed)

    async def count(self, creator: UserId) -> int:
        found = await self._db.fetchval(
            "SELECT count FROM follower_counts WHERE creator_id = $1", creator
        )
        return int(found or 0)

    async def page(self, creator: UserId, *, after: UserId | None, limit: int) -> list[UserId]:
        rows = await self._db.fetch(
            "SELECT follower_id FROM followers WHERE creator_id = $1 AND follower_id > $2"
            " ORDER BY follower_id LIMIT $3",
            creator,
            after or "",
            limit,
        )
        return [UserId(r[0]) for r in rows]

    async def between(
        self, creator: UserId, *, after: UserId | None, upto: UserId | None
    ) -> list[UserId]:
        rows = await self._db.fetch(
            "SELECT follower_id FROM followers WHERE creator_id = $1 AND follower_id > $2"
            " AND ($3::text IS NULL OR follower_id <= $3) ORDER BY follower_id",
            creator,
            after or "",
            upto,
        )
        return [UserId(r[0]) for r in rows]


async def _log_changes(
    c: Connection, creator: UserId, ids: Sequence[UserId], *, added: bool
) -> None:
    """Creators with precomputed partitions get their changes logged, in the same commit,
    for the next incremental refresh (``backends.postgres.stores.partitions``)."""
    await c.execute(
        "INSERT INTO follower_changes (creator_id, follower_id, added)"
        " SELECT $1, f, $3 FROM unnest($2::text[]) WITH ORDINALITY AS u(f, n)"
        " WHERE EXISTS (SELECT 1 FROM partition_sets WHERE creator_id = $1) ORDER BY n",
        creator,
        list(ids),
        added,
    )


async def _bump(c: Connection, creator: UserId, delta: int) -> None:
    if delta:
        await c.execute(
            "INSERT INTO follower_counts (creator_id, count) VALUES ($1, $2)"
            " ON CONFLICT (creator_id) DO UPDATE SET count = follower_counts.count + $2",
            creator,
            delta,
        )
