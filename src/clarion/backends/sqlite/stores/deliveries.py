"""Recording what evaluation decided: inbox entries, the delivery log and event progress.

One transaction per call, and a fixed handful of statements whatever the number of batches
in it. A batch is recorded at most once: the ``(seq, batch_key)`` markers are inserted first
(``RETURNING`` names the ones that are new) and a batch seen before (a redelivery) is
skipped whole. In-app entries and their log rows are written with ``INSERT … SELECT FROM
json_each``, so SQLite, not Python, loops over the users.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from clarion import slo
from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores.devices import apply_invalidations
from clarion.backends.sqlite.stores.live import active_among, append_posts
from clarion.models import Channel, Outcome, Priority
from clarion.stores.records import BatchResult, DeliveryRecord, Recorded
from clarion.stores.rows import (
    SUPERSEDED_OUTCOME,
    entry_rows,
    stream_candidates,
    stream_posts,
    suppression_rows,
)
from clarion.stores.rows import kept as kept_entries
from clarion.types import EventId, Seq, UserId

# Each event's progress, summed per event first (a pack may hold two batches of one event):
# one UPDATE by primary key per event. (One UPDATE … FROM json_each for the whole group read
# the JSON again for every event it joined: 60 ms for a pack of 1,000 direct events, where
# this takes 2.) An event is complete once every batch is done and nobody is still held.
# Parameters by number: ?1 seq, ?2 batches done, ?3 held, ?4 delivered, ?5 suppressed,
# ?6 failed, ?7 now (binding by name costs a dictionary lookup per parameter per event).
_COMPLETE = "batches_total IS NOT NULL AND batches_done + ?2 >= batches_total AND held + ?3 = 0"
_PROGRESS = f"""
UPDATE events SET
    batches_done = batches_done + ?2,
    held = held + ?3,
    delivered = delivered + ?4,
    suppressed = suppressed + ?5,
    failed = failed + ?6,
    first_delivery_at = CASE WHEN ?4 > 0 THEN coalesce(first_delivery_at, ?7)
        ELSE first_delivery_at END,
    state = CASE WHEN {_COMPLETE} AND state NOT IN ('failed', 'killed') THEN 'completed'
        ELSE state END,
    completed_at = CASE WHEN {_COMPLETE} AND completed_at IS NULL THEN ?7 ELSE completed_at END
WHERE seq = ?1
"""

_SUPPRESSED = """
INSERT INTO suppressions (seq, reason, people) VALUES (?, ?, ?)
ON CONFLICT (seq, reason) DO UPDATE SET people = people + excluded.people
"""

_MARK = """
INSERT OR IGNORE INTO batches (seq, batch_key, worker, recipients, done_at)
SELECT value ->> 0, value ->> 1, ?, value ->> 2, ? FROM json_each(?)
RETURNING seq, batch_key
"""
# Every batch's users in one statement. The CTE takes each [seq, [users…]] pair apart once
# (MATERIALIZED): reading ``value ->> 0`` inside the inner loop would re-parse the whole
# pair for every user, which made a 1,000-recipient batch fifteen times slower.
_BATCH_USERS = """
WITH b AS MATERIALIZED (SELECT value ->> 0 AS seq, value -> 1 AS users FROM json_each(:batches))
"""
_INBOX = (
    _BATCH_USERS + "INSERT OR IGNORE INTO inbox (user_id, seq)"
    " SELECT u.value, b.seq FROM b, json_each(b.users) u"
)
_INBOX_LOG = (
    _BATCH_USERS + "INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, reason, at)"
    f" SELECT u.value, b.seq, '{Channel.IN_APP.value}', 1, '{Outcome.DELIVERED.value}', NULL,"
    " :now FROM b, json_each(b.users) u"
)
_UNREACHABLE_LOG = (
    "WITH b AS MATERIALIZED (SELECT value ->> 0 AS seq, value ->> 1 AS channel,"
    " value ->> 2 AS reason, value -> 3 AS users FROM json_each(:groups))"
    " INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, reason, at)"
    f" SELECT u.value, b.seq, b.channel, 1, '{Outcome.SUPPRESSED.value}', b.reason, :now"
    " FROM b, json_each(b.users) u"
)
_ENTRIES = (
    "INSERT INTO inbox (user_id, seq, aggregate) VALUES (?, ?, ?)"
    " ON CONFLICT (user_id, seq) DO UPDATE SET aggregate = excluded.aggregate, read_at = NULL"
    " WHERE coalesce(inbox.aggregate ->> 0, 0) < excluded.aggregate ->> 0"
)
_LATEST_OF = "SELECT seq, created_at FROM collapse WHERE user_id = ? AND key = ?"
_NEWEST = (
    "INSERT INTO collapse (user_id, key, seq, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (user_id, key) DO UPDATE SET seq = excluded.seq, created_at = excluded.created_at"
)
# Outcomes come in runs of people with the same decision (a quarter of a realistic fan-out
# is held or suppressed): one JSON row per run, its users a list. Measured: 1.75 against
# 3.0 µs a row for binding each row's eight values.
_LOG = """
WITH g AS MATERIALIZED (
    SELECT value ->> 0 AS seq, value ->> 1 AS channel, value ->> 2 AS attempt,
        value ->> 3 AS outcome, value ->> 4 AS reason, value ->> 5 AS ref, value -> 6 AS users
    FROM json_each(:groups)
)
INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, reason, at, provider_ref)
SELECT u.value, g.seq, g.channel, g.attempt, g.outcome, g.reason, :now, g.ref
FROM g, json_each(g.users) u
"""


class SqliteDeliveryStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def record_batches(
        self, results: Sequence[BatchResult], worker: str, now: float
    ) -> Recorded:
        if not results:
            return Recorded(0)
        return await self._db.write(lambda c: _record(c, results, worker, now))

    async def recorded(self, keys: Sequence[tuple[Seq, str]]) -> set[tuple[Seq, str]]:
        if not keys:
            return set()
        wanted = orjson.dumps([[seq, key] for seq, key in keys])
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT b.seq, b.batch_key FROM json_each(?) j CROSS JOIN batches b"
                " ON b.seq = j.value ->> 0 AND b.batch_key = j.value ->> 1",
                (wanted,),
            ).fetchall()
        )
        return {(Seq(r[0]), r[1]) for r in rows}

    async def receipt(self, provider_ref: str, outcome: str, reason: str, at: float) -> bool:
        return await self._db.write(
            lambda c: (
                c.execute(
                    "INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, reason, at,"
                    " provider_ref) SELECT user_id, seq, channel, attempt, ?, ?, ?, provider_ref"
                    " FROM deliveries WHERE provider_ref = ? ORDER BY id LIMIT 1",
                    (outcome, reason, at, provider_ref),
                ).rowcount
                > 0
            )
        )

    async def latest(
        self, keys: Sequence[tuple[UserId, str]]
    ) -> dict[tuple[UserId, str], tuple[Seq, float]]:
        if not keys:
            return {}
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT c.user_id, c.key, c.seq, c.created_at FROM json_each(?) j"
                " JOIN collapse c ON c.user_id = j.value ->> 0 AND c.key = j.value ->> 1",
                (orjson.dumps(list(dict.fromkeys(keys))),),
            ).fetchall()
        )
        return {(UserId(r[0]), r[1]): (Seq(r[2]), float(r[3])) for r in rows}

    async def for_user(
        self, user_id: UserId, *, event_id: EventId | None, limit: int
    ) -> list[DeliveryRecord]:
        sql = (
            "SELECT e.event_id, d.user_id, d.channel, d.attempt, d.outcome, d.reason, d.at,"
            " substr(e.traceparent, 4, 32)"
            " FROM deliveries d JOIN events e ON e.seq = d.seq WHERE d.user_id = ?"
        )
        params: tuple[object, ...] = (user_id,)
        if event_id is not None:
            sql += " AND d.seq = (SELECT seq FROM events WHERE event_id = ?)"
            params += (event_id,)
        sql += " ORDER BY d.seq DESC, d.id DESC LIMIT ?"
        rows = await self._db.read(lambda c: c.execute(sql, (*params, limit)).fetchall())
        return [DeliveryRecord(EventId(r[0]), UserId(r[1]), *r[2:]) for r in rows]

    async def slo_counts(self, since: float, until: float) -> list[slo.Counts]:
        targets = (slo.TARGETS[Priority.P0].within_s, slo.TARGETS[Priority.P1].within_s)

        def count(c: sqlite3.Connection) -> list[Any]:
            first = _first_id_at(c, since - _LOG_SKEW_S)
            end = _first_id_at(c, until + _LOG_SKEW_S)
            return c.execute(_SLO, (since, until, *targets, first, end)).fetchall()

        return slo.counts_of(await self._db.read(count))


_SLO = slo.counts_sql(["?1", "?2", "?3", "?4"], narrow="d.id >= ?5 AND d.id < ?6")
_LOG_SKEW_S = 300.0
"""How far a row's ``at`` may be behind a row logged before it: a writer reads its clock
before it waits for the write lock, so rowid order is time order only within this."""


def _first_id_at(c: sqlite3.Connection, at: float) -> int:
    """Where the delivery log reaches ``at``: the id of its first row at or after it (the
    log's end if there is none), assuming rowid order is time order. Found by bisecting
    the log: it has no index on ``at`` (another index on the biggest table would slow
    every fan-out), and a scan of all of it takes minutes once it holds a few months."""
    low, high = c.execute(  # one min() or max() a SELECT is a lookup, both a scan
        "SELECT (SELECT min(id) FROM deliveries), (SELECT max(id) + 1 FROM deliveries)"
    ).fetchone()
    if low is None:
        return 0
    while low < high:
        middle = (low + high) // 2
        row_id, row_at = c.execute(
            "SELECT id, at FROM deliveries WHERE id >= ? ORDER BY id LIMIT 1", (middle,)
        ).fetchone()
        if row_at >= at:
            high = middle
        else:
            low = row_id + 1
    return int(low)


def _record(
    c: sqlite3.Connection, results: Sequence[BatchResult], worker: str, now: float
) -> Recorded:
    keys = orjson.dumps([[r.seq, r.batch_key, r.recipients] for r in results])
    new = {(Seq(s), k) for s, k in c.execute(_MARK, (worker, now, keys)).fetchall()}
    fresh = [r for r in results if (r.seq, r.batch_key) in new]
    dropped = _collapse(c, fresh)
    kept = kept_entries(fresh, dropped)
    inboxes = orjson.dumps([[r.seq, users] for r, users in zip(fresh, kept, strict=True) if users])
    c.execute(_INBOX, {"batches": inboxes})
    c.execute(_INBOX_LOG, {"batches": inboxes, "now": now})
    _log_outcomes(c, fresh, dropped, now)
    entries = entry_rows(fresh, now)
    if entries:
        c.executemany(_ENTRIES, entries)
    unreachable = [[r.seq, *group] for r in fresh for group in r.unreachable]
    if unreachable:
        c.execute(_UNREACHABLE_LOG, {"groups": orjson.dumps(unreachable), "now": now})
    invalidated = [i for r in fresh for i in r.invalidated]
    if invalidated:
        apply_invalidations(c, invalidated, now)
    totals: dict[Seq, list[int]] = {}
    for r, users in zip(fresh, kept, strict=True):
        t = totals.setdefault(r.seq, [0, 0, 0, 0, 0])
        t[0] += int(r.completes_batch)
        t[1] += r.held - r.released
        t[2] += len(users) + r.delivered
        t[3] += r.suppressed + len(r.inbox) - len(users)
        t[4] += r.failed
    c.executemany(_SUPPRESSED, suppression_rows(fresh, kept))
    c.executemany(
        _PROGRESS,
        [(seq, *t, now) for seq, t in sorted(totals.items())],
    )
    active = active_among(c, stream_candidates(fresh, kept), now)
    streamed = append_posts(c, stream_posts(fresh, kept, active), now) if active else []
    return Recorded(len(fresh), streamed)


def _log_outcomes(
    c: sqlite3.Connection,
    fresh: Sequence[BatchResult],
    dropped: set[tuple[int, UserId]],
    now: float,
) -> None:
    """The outcomes' log rows, in order: each run of outcomes alike but for the person
    (as evaluation makes them) is one group."""
    groups: list[list[Any]] = []
    last: tuple[Seq, str, int, Outcome, str | None, str | None] | None = None
    users: list[UserId] = []
    for r in fresh:
        seq = r.seq
        for o in r.outcomes:
            key = (seq, o.channel, o.attempt, o.outcome, o.reason, o.provider_ref)
            if key != last:
                users = []
                groups.append([*key, users])
                last = key
            users.append(o.user_id)
    channel, outcome, reason = SUPERSEDED_OUTCOME
    groups += [[fresh[i].seq, channel, 1, outcome, reason, None, [u]] for i, u in dropped]
    if groups:
        c.execute(_LOG, {"groups": orjson.dumps(groups), "now": now})


def _collapse(c: sqlite3.Connection, fresh: Sequence[BatchResult]) -> set[tuple[int, UserId]]:
    """Latest wins: each collapsing notification becomes its people's newest of its key if
    it is newer, and its in-app entry replaces theirs; returns the (result index, user) of
    the entries an already recorded one beats."""
    dropped: set[tuple[int, UserId]] = set()
    pending: dict[tuple[UserId, Seq], int] = {}  # entries this commit is about to write
    for index, result in enumerate(fresh):
        collapse = result.collapse
        if collapse is None:
            continue
        entries = set(result.inbox)
        for user in collapse.users:
            row = c.execute(_LATEST_OF, (user, collapse.key)).fetchone()
            latest = None if row is None else (Seq(row[0]), float(row[1]))
            if collapse.beaten_by(result.seq, latest):
                if user in entries:
                    dropped.add((index, user))
                continue
            if latest is not None and latest[0] != result.seq and user in entries:
                c.execute("DELETE FROM inbox WHERE user_id = ? AND seq = ?", (user, latest[0]))
                if (user, latest[0]) in pending:
                    dropped.add((pending[(user, latest[0])], user))
            if user in entries:
                pending[(user, result.seq)] = index
            c.execute(_NEWEST, (user, collapse.key, result.seq, collapse.created_at))
    return dropped
