"""Live sync in the SQLite file (``live``): stream heads and logs, tickets, acknowledgements
and keyed state.

``append_posts`` runs inside whatever transaction produced the messages (recording a batch,
storing a state), so a message exists exactly when what it announces does. Ids come in
commit order — one writer at a time — which is what lets an API process follow every
stream by polling ``id > last``.

A person's stream is a chain through the log: each entry points at the one before it
(``prev``), their head at the last (``last_id``), and every ``MARK_EVERY``-th position is
marked (``stream_marks``). A replay walks back from the head, or from the first mark past
where it must stop, in one recursive statement. A per-person index over the whole log
served replays too, but each update wrote into one of its pages for every person it
touched: a third of a state batch's commit at 50,000 people.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence

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


MARK_EVERY = 128
"""Every this many positions of a person's stream is marked (schema 13 marked the same):
a replay walks at most this far past what it returns."""


def append_posts(c: sqlite3.Connection, posts: Sequence[Post], now: float) -> list[Entry]:
    """Append ``posts`` to the streams of those people whose stream is active; the others
    are skipped (nobody is listening). Returns what was appended."""
    if not posts:
        return []
    users = list(dict.fromkeys(p.user_id for p in posts))
    heads = {
        UserId(r[0]): [r[1], int(r[2]), int(r[3])]
        for r in c.execute(
            "SELECT h.user_id, h.epoch, h.pos, h.last_id FROM json_each(?) j"
            " JOIN stream_heads h ON h.user_id = j.value WHERE h.active_until > ?",
            (orjson.dumps(users), now),
        )
    }
    if not heads:
        return []
    base = int(c.execute("SELECT coalesce(max(id), 0) FROM stream_log").fetchone()[0])
    entries, rows, marks = [], [], []
    for post in posts:
        head = heads.get(post.user_id)
        if head is None:
            continue
        base += 1
        head[1] += 1
        entry = Entry(
            base, post.user_id, head[0], head[1], post.kind, post.body, now, post.origin,
            post.critical,
        )  # fmt: skip
        entries.append(entry)
        rows.append(
            (
                base, post.user_id, head[0], head[1], post.kind.value, orjson.dumps(post.body),
                now, post.origin, int(post.critical), head[2],
            )
        )  # fmt: skip
        head[2] = base
        if head[1] % MARK_EVERY == 0:
            marks.append((post.user_id, head[1], base))
    c.executemany(
        f"INSERT INTO stream_log ({_ENTRY}, prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )
    c.executemany(
        "UPDATE stream_heads SET pos = ?, last_id = ? WHERE user_id = ?",
        [(pos, last, user) for user, (_, pos, last) in heads.items()],
    )
    if marks:
        c.executemany("INSERT INTO stream_marks (user_id, pos, id) VALUES (?, ?, ?)", marks)
    return entries


_WALK = f"""
WITH RECURSIVE chain (id, prev, pos) AS (
    SELECT id, prev, pos FROM stream_log WHERE id = :start
    UNION ALL
    SELECT l.id, l.prev, l.pos FROM chain JOIN stream_log l ON l.id = chain.prev
    WHERE chain.pos > :after + 1
)
SELECT {", ".join(f"l.{column.strip()}" for column in _ENTRY.split(","))}
FROM chain JOIN stream_log l ON l.id = chain.id
WHERE chain.pos > :after AND chain.pos <= :upto
ORDER BY chain.pos
"""
"""One person's entries after ``after`` up to ``upto``, walking back from ``start`` (an
entry at or past ``upto``) until ``after + 1`` or the end of what is kept."""


def _walk(
    c: sqlite3.Connection, user_id: UserId, last_id: int, head: Head, after: int, limit: int
) -> list[Entry]:
    upto = min(head.pos, after + limit)
    start = last_id
    if upto < head.pos:
        mark = c.execute(
            "SELECT id FROM stream_marks WHERE user_id = ? AND pos >= ? ORDER BY pos LIMIT 1",
            (user_id, upto),
        ).fetchone()
        start = last_id if mark is None else int(mark[0])
    rows = c.execute(_WALK, {"start": start, "after": after, "upto": upto}).fetchall()
    return [entry_of(r) for r in rows]


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
                "SELECT epoch, pos, last_id FROM stream_heads WHERE user_id = ?", (user_id,)
            ).fetchone()
            head = Head(new_epoch(), 0) if row is None else Head(row[0], int(row[1]))
            if row is None or since is None or since[0] != head.epoch or since[1] >= head.pos:
                return Replay(head, reset=replay_plan(head, since, None))
            entries = _walk(c, user_id, int(row[2]), head, since[1], limit)
            reset = replay_plan(head, since, entries[0].pos if entries else None)
            return Replay(head, reset=reset) if reset is not None else Replay(head, entries)

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

    async def feed(
        self, after: int, limit: int, *, skip: Collection[int] = ()
    ) -> tuple[int, list[Entry]]:
        """Up to ``limit`` entries after ``after``, in order, less those in ``skip`` (a
        process's own, which it delivered as it wrote them); and the last id read."""
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_ENTRY} FROM stream_log WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        )
        last = rows[-1][0] if rows else after
        return last, [entry_of(r) for r in rows if r[0] not in skip]

    async def last_id(self) -> int:
        row = await self._db.read(
            lambda c: c.execute("SELECT coalesce(max(id), 0) FROM stream_log").fetchone()
        )
        return int(row[0])

    async def prune(self, now: float) -> int:
        """Drop what is both older than a day and more than ``KEEP`` behind its head, what
        lapsed epochs left behind, and the marks of what was dropped."""

        def prune(c: sqlite3.Connection) -> int:
            dropped = int(c.execute(_PRUNE, (now - KEEP_S, KEEP)).rowcount)
            c.execute(
                "DELETE FROM stream_marks WHERE NOT EXISTS"
                " (SELECT 1 FROM stream_log l WHERE l.id = stream_marks.id)"
            )
            return dropped

        return await self._db.write(prune)


_PRUNE = """
DELETE FROM stream_log WHERE (
    SELECT stream_log.epoch <> h.epoch OR (stream_log.at < ?1 AND stream_log.pos <= h.pos - ?2)
    FROM stream_heads h WHERE h.user_id = stream_log.user_id
)
"""


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
    # The lapsed epoch's entries are pruned later; its chain is cut here (the head starts
    # again) and its marks go now, as the new epoch's positions reuse theirs. Deleting the
    # entries here could delete the newest ids, which the next append would reuse unseen
    # by a process that had read past them.
    c.execute("DELETE FROM stream_marks WHERE user_id = ?", (user_id,))
    c.execute(
        "INSERT INTO stream_heads (user_id, epoch, pos, active_until) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET epoch = excluded.epoch, pos = excluded.pos,"
        " last_id = 0, active_until = excluded.active_until",
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
