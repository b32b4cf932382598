"""Live sync in the SQLite file (``live``): stream heads and logs, tickets, acknowledgements
and keyed state.

``append_posts`` runs inside whatever transaction produced the messages (recording a batch,
storing a state), so a message exists exactly when what it announces does. Ids come in
commit order — one writer at a time — which is what lets an API process follow every
stream by polling ``id > last``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
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
from clarion.types import JSONObject, UserId


def active_among(c: sqlite3.Connection, users: Sequence[UserId], now: float) -> set[UserId]:
    """Those of ``users`` whose stream is active (few: people with a device open lately)."""
    if not users:
        return set()
    return {
        UserId(r[0])
        for r in c.execute(
            "SELECT h.user_id FROM json_each(?) j JOIN stream_heads h ON h.user_id = j.value"
            " WHERE h.active_until > ?",
            (orjson.dumps(users), now),
        )
    }


def append_posts(c: sqlite3.Connection, posts: Sequence[Post], now: float) -> list[Entry]:
    """Append ``posts`` to the streams of those people whose stream is active; the others
    are skipped (nobody is listening). Returns what was appended."""
    if not posts:
        return []
    users = list(dict.fromkeys(p.user_id for p in posts))
    heads = {
        UserId(r[0]): [r[1], int(r[2])]
        for r in c.execute(
            "SELECT h.user_id, h.epoch, h.pos FROM json_each(?) j"
            " JOIN stream_heads h ON h.user_id = j.value WHERE h.active_until > ?",
            (orjson.dumps(users), now),
        )
    }
    if not heads:
        return []
    base = int(c.execute("SELECT coalesce(max(id), 0) FROM stream_log").fetchone()[0])
    entries = []
    for post in posts:
        head = heads.get(post.user_id)
        if head is None:
            continue
        head[1] += 1
        base += 1
        entries.append(
            Entry(
                base,
                post.user_id,
                head[0],
                head[1],
                post.kind,
                post.body,
                now,
                post.origin,
                post.critical,
            )
        )
    c.executemany(
        f"INSERT INTO stream_log ({_ENTRY}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.id,
                e.user_id,
                e.epoch,
                e.pos,
                e.kind.value,
                orjson.dumps(e.body),
                e.at,
                e.origin,
                int(e.critical),
            )
            for e in entries
        ],
    )
    c.executemany(
        "UPDATE stream_heads SET pos = ? WHERE user_id = ?",
        [(pos, user) for user, (_, pos) in heads.items()],
    )
    return entries


class SqliteStreamStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def activate(self, user_id: UserId, now: float) -> Head:
        return await self._db.write(lambda c: _activate(c, user_id, now))

    async def append(self, posts: Sequence[Post], now: float) -> list[Entry]:
        return await self._db.write(lambda c: append_posts(c, posts, now))

    async def replay(
        self, user_id: UserId, since: tuple[str, int] | None, *, limit: int = KEEP
    ) -> Replay:
        def read(c: sqlite3.Connection) -> Replay:
            row = c.execute(
                "SELECT epoch, pos FROM stream_heads WHERE user_id = ?", (user_id,)
            ).fetchone()
            head = Head(new_epoch(), 0) if row is None else Head(row[0], int(row[1]))
            oldest = c.execute(
                "SELECT min(pos) FROM stream_log WHERE user_id = ? AND epoch = ?",
                (user_id, head.epoch),
            ).fetchone()[0]
            reset = replay_plan(head, since, oldest)
            if reset is not None or since is None:
                return Replay(head, reset=reset)
            rows = c.execute(
                f"SELECT {_ENTRY} FROM stream_log WHERE user_id = ? AND pos > ?"
                " ORDER BY pos LIMIT ?",
                (user_id, since[1], limit),
            ).fetchall()
            return Replay(head, [entry_of(r) for r in rows])

        return await self._db.snapshot(read)

    async def heads(self, user_ids: Sequence[UserId]) -> dict[UserId, Head]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT h.user_id, h.epoch, h.pos FROM json_each(?) j"
                " JOIN stream_heads h ON h.user_id = j.value",
                (orjson.dumps(list(user_ids)),),
            ).fetchall()
        )
        return {UserId(r[0]): Head(r[1], int(r[2])) for r in rows}

    async def feed(self, after: int, limit: int) -> list[Entry]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_ENTRY} FROM stream_log WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        )
        return [entry_of(r) for r in rows]

    async def last_id(self) -> int:
        row = await self._db.read(
            lambda c: c.execute("SELECT coalesce(max(id), 0) FROM stream_log").fetchone()
        )
        return int(row[0])

    async def prune(self, now: float) -> int:
        """Drop what is both older than a day and more than ``KEEP`` behind its head."""
        return await self._db.write(
            lambda c: (
                c.execute(
                    "DELETE FROM stream_log WHERE at < ? AND pos <= (SELECT h.pos - ? FROM"
                    " stream_heads h WHERE h.user_id = stream_log.user_id)",
                    (now - KEEP_S, KEEP),
                ).rowcount
            )
        )


def _activate(c: sqlite3.Connection, user_id: UserId, now: float) -> Head:
    row = c.execute(
        "SELECT epoch, pos, active_until FROM stream_heads WHERE user_id = ?", (user_id,)
    ).fetchone()
    if row is not None and row[2] > now:
        c.execute(
            "UPDATE stream_heads SET active_until = ? WHERE user_id = ?", (now + ACTIVE_S, user_id)
        )
        return Head(row[0], int(row[1]))
    # New, or lapsed: what was written meanwhile was not, so a new epoch (devices reset).
    head = Head(new_epoch(), 0)
    c.execute("DELETE FROM stream_log WHERE user_id = ?", (user_id,))
    c.execute(
        "INSERT INTO stream_heads (user_id, epoch, pos, active_until) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET epoch = excluded.epoch, pos = excluded.pos,"
        " active_until = excluded.active_until",
        (user_id, head.epoch, head.pos, now + ACTIVE_S),
    )
    return head


class SqliteTicketStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def issue(self, ticket_hash: str, user_id: UserId, expires_at: float) -> None:
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO stream_tickets (ticket, user_id, expires_at) VALUES (?, ?, ?)",
                (ticket_hash, user_id, expires_at),
            )
        )

    async def redeem(self, ticket_hash: str, now: float) -> UserId | None:
        def take(c: sqlite3.Connection) -> UserId | None:
            c.execute("DELETE FROM stream_tickets WHERE expires_at <= ?", (now,))
            row = c.execute(
                "DELETE FROM stream_tickets WHERE ticket = ? RETURNING user_id", (ticket_hash,)
            ).fetchone()
            return None if row is None else UserId(row[0])

        return await self._db.write(take)


class SqliteStateStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def put(self, posts: Sequence[Post], now: float) -> list[Put]:
        """Store each state post whose version is newer than the stored one, and append it
        to the person's stream, in one transaction."""
        return await self._db.write(lambda c: _put_all(c, posts, now))

    async def snapshot(self, user_id: UserId) -> list[Stored]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT key, value, version, updated_at FROM user_state WHERE user_id = ?"
                " ORDER BY key",
                (user_id,),
            ).fetchall()
        )
        return [Stored(r[0], orjson.loads(r[1]), int(r[2]), float(r[3])) for r in rows]

    async def ack(self, user_id: UserId, device_id: str, epoch: str, pos: int, now: float) -> None:
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO stream_acks (user_id, device_id, epoch, pos, at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE SET"
                " epoch = excluded.epoch, pos = excluded.pos, at = excluded.at"
                " WHERE stream_acks.epoch <> excluded.epoch OR stream_acks.pos < excluded.pos",
                (user_id, device_id, epoch, pos, now),
            )
        )

    async def acked(self, user_id: UserId) -> dict[str, tuple[str, int]]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT device_id, epoch, pos FROM stream_acks WHERE user_id = ?", (user_id,)
            ).fetchall()
        )
        return {r[0]: (r[1], int(r[2])) for r in rows}


_PUT_MANY = """
INSERT INTO user_state (user_id, key, value, version, updated_at)
SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, ? FROM json_each(?) j
WHERE true
ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, version = excluded.version,
    updated_at = excluded.updated_at
WHERE user_state.version < excluded.version
RETURNING user_id, key
"""


def _put_all(c: sqlite3.Connection, posts: Sequence[Post], now: float) -> list[Put]:
    """A batch in three statements (upsert, heads, log) a round (``live.state.rounds``)."""
    puts = [Put(False)] * len(posts)
    for taken in rounds(posts):
        for n, put in zip(taken, _put_round(c, [posts[n] for n in taken], now), strict=True):
            puts[n] = put
    return puts


def _put_round(c: sqlite3.Connection, posts: Sequence[Post], now: float) -> list[Put]:
    """Posts of as many keys."""
    if len(posts) == 1:
        return [_put(c, posts[0], now)]
    keys = [key_of(p) for p in posts]
    rows = [
        [*key, orjson.dumps(p.body["value"]).decode(), p.body["version"]]
        for key, p in zip(keys, posts, strict=True)
    ]
    applied = {(r[0], r[1]) for r in c.execute(_PUT_MANY, (now, orjson.dumps(rows)))}
    entries = append_posts(
        c, [p for key, p in zip(keys, posts, strict=True) if key in applied], now
    )
    return puts_of(keys, applied, entries)


def _put(c: sqlite3.Connection, post: Post, now: float) -> Put:
    body: JSONObject = post.body
    changed = c.execute(
        "INSERT INTO user_state (user_id, key, value, version, updated_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value,"
        " version = excluded.version, updated_at = excluded.updated_at"
        " WHERE user_state.version < excluded.version",
        (post.user_id, body["key"], orjson.dumps(body["value"]), body["version"], now),
    ).rowcount
    if not changed:
        return Put(applied=False)
    appended = append_posts(c, [post], now)
    return Put(True, appended[0] if appended else None)
