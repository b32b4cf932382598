"""Live sync in PostgreSQL (``live``): stream heads and logs, tickets, acknowledgements and
keyed state.

``append_posts`` runs inside whatever transaction produced the messages (recording a batch,
storing a state) and locks the heads it moves (``FOR UPDATE``), so one person's positions
are handed out in commit order. Ids are not in commit order across people here, so API
processes do not poll by id: they hear of new entries through Redis (``live.feed``) and
read each person's stream by position.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from asyncpg import Record

from clarion.backends.postgres import Connection, PostgresDatabase
from clarion.live.log import (
    ACTIVE_S,
    KEEP,
    KEEP_S,
    Entry,
    Head,
    Post,
    Replay,
    new_epoch,
    replay_plan,
)
from clarion.live.state import Put, Stored, key_of, puts_of, rounds
from clarion.stores.rows import ENTRY_COLUMNS as _ENTRY
from clarion.stores.rows import entry_of
from clarion.types import UserId


async def active_among(c: Connection, users: Sequence[UserId], now: float) -> set[UserId]:
    """Those of ``users`` whose stream is active (few: people with a device open lately)."""
    rows = await c.fetch(
        "SELECT user_id FROM stream_heads WHERE user_id = ANY($1::text[]) AND active_until > $2",
        list(users),
        now,
    )
    return {UserId(r[0]) for r in rows}


async def append_posts(c: Connection, posts: Sequence[Post], now: float) -> list[Entry]:
    """Append ``posts`` to the streams of those whose stream is active (others are
    skipped: nobody is listening); returns what was appended."""
    if not posts:
        return []
    users = sorted({p.user_id for p in posts})
    heads = {
        UserId(r[0]): [r[1], int(r[2])]
        for r in await c.fetch(
            "SELECT user_id, epoch, pos FROM stream_heads WHERE user_id = ANY($1::text[])"
            " AND active_until > $2 ORDER BY user_id FOR UPDATE",
            users,
            now,
        )
    }
    mine = [p for p in posts if p.user_id in heads]
    if not mine:
        return []
    positions = []
    for post in mine:
        heads[post.user_id][1] += 1
        positions.append((heads[post.user_id][0], heads[post.user_id][1]))
    rows = await c.fetch(
        f"INSERT INTO stream_log (user_id, epoch, pos, kind, body, at, origin, critical)"
        f" SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],"
        f" $6::float8[], $7::text[], $8::bool[]) RETURNING {_ENTRY}",
        [p.user_id for p in mine],
        [e for e, _ in positions],
        [n for _, n in positions],
        [p.kind.value for p in mine],
        [orjson.dumps(p.body).decode() for p in mine],
        [now] * len(mine),
        [p.origin for p in mine],
        [p.critical for p in mine],
    )
    await c.execute(
        "UPDATE stream_heads h SET pos = x.pos FROM unnest($1::text[], $2::bigint[])"
        " AS x(u, pos) WHERE h.user_id = x.u",
        list(heads),
        [pos for _, pos in heads.values()],
    )
    return sorted((entry_of(r) for r in rows), key=lambda e: (e.user_id, e.pos))


class PostgresStreamStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def activate(self, user_id: UserId, now: float) -> Head:
        async with self._db.transaction() as c:
            row = await _head_for_update(c, user_id)
            if row is None:
                head = Head(new_epoch(), 0)
                made = await c.fetchval(
                    "INSERT INTO stream_heads (user_id, epoch, pos, active_until)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING RETURNING 1",
                    user_id,
                    head.epoch,
                    head.pos,
                    now + ACTIVE_S,
                )
                if made is not None:
                    return head
                # Another device of theirs started the stream just now: share its epoch
                # (a second one would reset the first device's stream).
                row = await _head_for_update(c, user_id)
                assert row is not None
            if row[2] > now:
                await c.execute(
                    "UPDATE stream_heads SET active_until = $1 WHERE user_id = $2",
                    now + ACTIVE_S,
                    user_id,
                )
                return Head(row[0], int(row[1]))
            head = Head(new_epoch(), 0)  # the stream lapsed: a new epoch, an empty log
            await c.execute("DELETE FROM stream_log WHERE user_id = $1", user_id)
            await c.execute(
                "UPDATE stream_heads SET epoch = $1, pos = $2, active_until = $3"
                " WHERE user_id = $4",
                head.epoch,
                head.pos,
                now + ACTIVE_S,
                user_id,
            )
            return head

    async def append(self, posts: Sequence[Post], now: float) -> list[Entry]:
        async with self._db.transaction() as c:
            return await append_posts(c, posts, now)

    async def replay(
        self, user_id: UserId, since: tuple[str, int] | None, *, limit: int = KEEP
    ) -> Replay:
        # A reconnect storm is thousands of these at once, so no transaction: one round
        # trip for a device that is up to date, two for one that missed something, and the
        # entries read are checked to follow on from ``since`` instead.
        row = await self._db.fetchrow(
            "SELECT h.epoch, h.pos, (SELECT min(l.pos) FROM stream_log l"
            " WHERE l.user_id = h.user_id AND l.epoch = h.epoch)"
            " FROM stream_heads h WHERE h.user_id = $1",
            user_id,
        )
        head = Head(new_epoch(), 0) if row is None else Head(row[0], int(row[1]))
        reset = replay_plan(head, since, None if row is None else row[2])
        if reset is not None or since is None or since[1] >= head.pos:
            return Replay(head, reset=reset)
        rows = await self._db.fetch(
            f"SELECT {_ENTRY} FROM stream_log WHERE user_id = $1 AND epoch = $2 AND pos > $3"
            " ORDER BY pos LIMIT $4",
            user_id,
            head.epoch,
            since[1],
            limit,
        )
        if not rows or rows[0]["pos"] != since[1] + 1:
            # Pruned or restarted between the two reads.
            return Replay(head, reset="too far behind: what was missed is no longer kept; refetch")
        return Replay(head, [entry_of(r) for r in rows])

    async def heads(self, user_ids: Sequence[UserId]) -> dict[UserId, Head]:
        rows = await self._db.fetch(
            "SELECT user_id, epoch, pos FROM stream_heads WHERE user_id = ANY($1::text[])",
            list(user_ids),
        )
        return {UserId(r[0]): Head(r[1], int(r[2])) for r in rows}

    async def prune(self, now: float) -> int:
        return await self._db.execute(
            "DELETE FROM stream_log l USING stream_heads h WHERE h.user_id = l.user_id"
            " AND l.at < $1 AND l.pos <= h.pos - $2",
            now - KEEP_S,
            KEEP,
        )


class PostgresTicketStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def issue(self, ticket_hash: str, user_id: UserId, expires_at: float) -> None:
        await self._db.execute(
            "INSERT INTO stream_tickets (ticket, user_id, expires_at) VALUES ($1, $2, $3)",
            ticket_hash,
            user_id,
            expires_at,
        )

    async def redeem(self, ticket_hash: str, now: float) -> UserId | None:
        async with self._db.transaction() as c:
            await c.execute("DELETE FROM stream_tickets WHERE expires_at <= $1", now)
            user = await c.fetchval(
                "DELETE FROM stream_tickets WHERE ticket = $1 RETURNING user_id", ticket_hash
            )
        return None if user is None else UserId(user)


class PostgresStateStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def put(self, posts: Sequence[Post], now: float) -> list[Put]:
        async with self._db.transaction() as c:
            return await _put_all(c, posts, now)

    async def snapshot(self, user_id: UserId) -> list[Stored]:
        rows = await self._db.fetch(
            "SELECT key, value, version, updated_at FROM user_state WHERE user_id = $1"
            " ORDER BY key",
            user_id,
        )
        return [Stored(r[0], orjson.loads(r[1]), int(r[2]), float(r[3])) for r in rows]

    async def ack(self, user_id: UserId, device_id: str, epoch: str, pos: int, now: float) -> None:
        await self._db.execute(
            "INSERT INTO stream_acks (user_id, device_id, epoch, pos, at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, device_id) DO UPDATE SET"
            " epoch = excluded.epoch, pos = excluded.pos, at = excluded.at"
            " WHERE stream_acks.epoch <> excluded.epoch OR stream_acks.pos < excluded.pos",
            user_id,
            device_id,
            epoch,
            pos,
            now,
        )

    async def acked(self, user_id: UserId) -> dict[str, tuple[str, int]]:
        rows = await self._db.fetch(
            "SELECT device_id, epoch, pos FROM stream_acks WHERE user_id = $1", user_id
        )
        return {r[0]: (r[1], int(r[2])) for r in rows}


async def _head_for_update(c: Connection, user_id: UserId) -> Record | None:
    row: Record | None = await c.fetchrow(
        "SELECT epoch, pos, active_until FROM stream_heads WHERE user_id = $1 FOR UPDATE",
        user_id,
    )
    return row


async def _put_all(c: Connection, posts: Sequence[Post], now: float) -> list[Put]:
    """A batch in one upsert and one append a round (``live.state.rounds``): four round
    trips, not four a post.

    Every lock is taken in the first round, in one order: the batch's ``user_state`` rows
    (its upsert), then the stream heads of everyone in the batch. A later round can append
    for someone the first did not (their first post was stale); locking their head only
    then, two batches reaching the same people in opposite rounds deadlocked."""
    puts = [Put(False)] * len(posts)
    taken_rounds = rounds(posts)
    everyone = sorted({p.user_id for p in posts}) if len(taken_rounds) > 1 else []
    for taken in taken_rounds:
        done = await _put_round(c, [posts[n] for n in taken], now, lock_heads=everyone)
        everyone = []
        for n, put in zip(taken, done, strict=True):
            puts[n] = put
    return puts


async def _put_round(
    c: Connection, posts: Sequence[Post], now: float, *, lock_heads: Sequence[UserId] = ()
) -> list[Put]:
    """Posts of as many keys. Rows go in (person, key) order, so two writers with
    overlapping batches lock in one order; then the heads in ``lock_heads``, in order."""
    if len(posts) == 1:
        return [await _put(c, posts[0], now)]
    keys = [key_of(p) for p in posts]
    order = sorted(range(len(posts)), key=keys.__getitem__)
    rows = await c.fetch(
        "INSERT INTO user_state (user_id, key, value, version, updated_at)"
        " SELECT u, k, v, n, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])"
        " AS t(u, k, v, n) ORDER BY u, k"
        " ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value,"
        " version = excluded.version, updated_at = excluded.updated_at"
        " WHERE user_state.version < excluded.version RETURNING user_id, key",
        [keys[i][0] for i in order],
        [keys[i][1] for i in order],
        [orjson.dumps(posts[i].body["value"]).decode() for i in order],
        [posts[i].body["version"] for i in order],
        now,
    )
    applied = {(UserId(r[0]), r[1]) for r in rows}
    if lock_heads:
        await c.execute(
            "SELECT 1 FROM stream_heads WHERE user_id = ANY($1::text[]) ORDER BY user_id"
            " FOR UPDATE",
            list(lock_heads),
        )
    entries = await append_posts(
        c, [p for key, p in zip(keys, posts, strict=True) if key in applied], now
    )
    return puts_of(keys, applied, entries)


async def _put(c: Connection, post: Post, now: float) -> Put:
    body = post.body
    changed = await c.fetchval(
        "INSERT INTO user_state (user_id, key, value, version, updated_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, key) DO UPDATE SET"
        " value = excluded.value, version = excluded.version, updated_at = excluded.updated_at"
        " WHERE user_state.version < excluded.version RETURNING 1",
        post.user_id,
        body["key"],
        orjson.dumps(body["value"]).decode(),
        body["version"],
        now,
    )
    if changed is None:
        return Put(applied=False)
    appended = await append_posts(c, [post], now)
    return Put(True, appended[0] if appended else None)
