"""Recording what evaluation decided: inbox entries, the delivery log and event progress.

One transaction per call and a fixed handful of statements whatever the number of batches:
every list travels as arrays and PostgreSQL loops over them (``unnest``). A batch is
recorded at most once: its ``(seq, batch_key)`` marker is inserted first and a batch seen
before — or being recorded right now by another worker, whose insert this one waits for —
is skipped whole.

Progress is added to the event rows in the UPDATE itself (``events.batches_done + …``), not
computed beforehand, so two workers finishing batches of one event at once both count.
"""

from __future__ import annotations

from collections.abc import Sequence

from clarion import slo
from clarion.backends.postgres import Connection, PostgresDatabase, locks
from clarion.backends.postgres.locks import lock_keys
from clarion.backends.postgres.stores.devices import apply_invalidations
from clarion.backends.postgres.stores.live import active_among, append_posts
from clarion.models import Channel, Outcome, Priority
from clarion.stores.records import BatchResult, DeliveryOutcome, DeliveryRecord, Recorded
from clarion.stores.rows import (
    SUPERSEDED_OUTCOME,
    entry_rows,
    stream_candidates,
    stream_posts,
    suppression_rows,
)
from clarion.stores.rows import kept as kept_entries
from clarion.types import EventId, Seq, UserId

_MARK = """
INSERT INTO batches (seq, batch_key, worker, recipients, done_at)
SELECT s, k, $4, n, $5 FROM unnest($1::bigint[], $2::text[], $3::int[]) AS b(s, k, n)
ON CONFLICT DO NOTHING RETURNING seq, batch_key
"""
_INBOX = """
INSERT INTO inbox (user_id, seq) SELECT u, s FROM unnest($1::text[], $2::bigint[]) AS x(u, s)
ON CONFLICT DO NOTHING
"""
_INBOX_LOG = f"""
INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, at)
SELECT u, s, '{Channel.IN_APP.value}', 1, '{Outcome.DELIVERED.value}', $3
FROM unnest($1::text[], $2::bigint[]) AS x(u, s)
"""
_LOG = """
INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, reason, at, provider_ref)
SELECT u, s, ch, a, o, r, $8, ref
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[])
    AS x(u, s, ch, a, o, r, ref)
"""
_LATEST_OF = "SELECT seq, created_at FROM collapse WHERE user_id = $1 AND key = $2"
_NEWEST = """
INSERT INTO collapse (user_id, key, seq, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, key) DO UPDATE SET seq = excluded.seq, created_at = excluded.created_at
"""
_ENTRIES = """
INSERT INTO inbox (user_id, seq, aggregate)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])
ON CONFLICT (user_id, seq) DO UPDATE SET aggregate = excluded.aggregate, read_at = NULL
WHERE coalesce((inbox.aggregate::json ->> 0)::bigint, 0)
    < (excluded.aggregate::json ->> 0)::bigint
"""
_UNREACHABLE_LOG = f"""
INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, reason, at)
SELECT u, s, ch, 1, '{Outcome.SUPPRESSED.value}', r, $5
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS x(u, s, ch, r)
"""
_SUPPRESSED = """
INSERT INTO suppressions (seq, reason, people)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])
ON CONFLICT (seq, reason) DO UPDATE SET people = suppressions.people + excluded.people
"""
_COMPLETE = (
    "events.batches_total IS NOT NULL AND events.batches_done + p.batches >= events.batches_total"
    " AND events.held + p.held = 0"
)
_PROGRESS = f"""
WITH p AS (
    SELECT s AS seq, sum(b) AS batches, sum(d) AS delivered, sum(x) AS suppressed,
           sum(h) - sum(r) AS held, sum(f) AS failed
    FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[])
        AS v(s, b, d, x, h, r, f)
    GROUP BY s
)
UPDATE events SET
    batches_done = events.batches_done + p.batches,
    held = events.held + p.held,
    delivered = events.delivered + p.delivered,
    suppressed = events.suppressed + p.suppressed,
    failed = events.failed + p.failed,
    first_delivery_at = CASE WHEN p.delivered > 0 THEN coalesce(events.first_delivery_at, $8)
        ELSE events.first_delivery_at END,
    state = CASE WHEN {_COMPLETE} AND events.state NOT IN ('failed', 'killed') THEN 'completed'
        ELSE events.state END,
    completed_at = CASE WHEN {_COMPLETE} AND events.completed_at IS NULL THEN $8
        ELSE events.completed_at END
FROM p WHERE events.seq = p.seq
"""


class PostgresDeliveryStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def record_batches(
        self, results: Sequence[BatchResult], worker: str, now: float
    ) -> Recorded:
        if not results:
            return Recorded(0)
        async with self._db.transaction() as c:
            return await _record(c, results, worker, now)

    async def recorded(self, keys: Sequence[tuple[Seq, str]]) -> set[tuple[Seq, str]]:
        if not keys:
            return set()
        rows = await self._db.fetch(
            "SELECT b.seq, b.batch_key FROM unnest($1::bigint[], $2::text[]) AS k(s, key)"
            " JOIN batches b ON b.seq = k.s AND b.batch_key = k.key",
            [s for s, _ in keys],
            [k for _, k in keys],
        )
        return {(Seq(r[0]), r[1]) for r in rows}

    async def receipt(self, provider_ref: str, outcome: str, reason: str, at: float) -> bool:
        logged = await self._db.execute(
            "INSERT INTO deliveries (user_id, seq, channel, attempt, outcome, reason, at,"
            " provider_ref) SELECT user_id, seq, channel, attempt, $1, $2, $3, provider_ref"
            " FROM deliveries WHERE provider_ref = $4 ORDER BY id LIMIT 1",
            outcome,
            reason,
            at,
            provider_ref,
        )
        return logged > 0

    async def latest(
        self, keys: Sequence[tuple[UserId, str]]
    ) -> dict[tuple[UserId, str], tuple[Seq, float]]:
        if not keys:
            return {}
        rows = await self._db.fetch(
            "SELECT c.user_id, c.key, c.seq, c.created_at"
            " FROM unnest($1::text[], $2::text[]) AS k(u, key)"
            " JOIN collapse c ON c.user_id = k.u AND c.key = k.key",
            [u for u, _ in keys],
            [k for _, k in keys],
        )
        return {(UserId(r[0]), r[1]): (Seq(r[2]), float(r[3])) for r in rows}

    async def for_user(
        self, user_id: UserId, *, event_id: EventId | None, limit: int
    ) -> list[DeliveryRecord]:
        rows = await self._db.fetch(
            "SELECT e.event_id, d.user_id, d.channel, d.attempt, d.outcome, d.reason, d.at,"
            " substr(e.traceparent, 4, 32)"
            " FROM deliveries d JOIN events e ON e.seq = d.seq WHERE d.user_id = $1"
            " AND ($2::text IS NULL OR e.event_id = $2) ORDER BY d.seq DESC, d.id DESC LIMIT $3",
            user_id,
            event_id,
            limit,
        )
        return [DeliveryRecord(EventId(r[0]), UserId(r[1]), *r[2:]) for r in rows]

    async def slo_counts(self, since: float, until: float) -> list[slo.Counts]:
        targets = (slo.TARGETS[Priority.P0].within_s, slo.TARGETS[Priority.P1].within_s)
        return slo.counts_of(await self._db.fetch(_SLO, since, until, *targets))


_SLO = slo.counts_sql(["$1", "$2", "$3::float8", "$4::float8"])


async def _record(
    c: Connection, results: Sequence[BatchResult], worker: str, now: float
) -> Recorded:
    new = {
        (Seq(r[0]), r[1])
        for r in await c.fetch(
            _MARK,
            [r.seq for r in results],
            [r.batch_key for r in results],
            [r.recipients for r in results],
            worker,
            now,
        )
    }
    fresh = sorted(
        (r for r in results if (r.seq, r.batch_key) in new), key=lambda r: (r.seq, r.batch_key)
    )
    if not fresh:
        return Recorded(0)
    dropped = await _collapse(c, fresh)
    kept = kept_entries(fresh, dropped)
    users = [u for group in kept for u in group]
    if users:
        seqs = [r.seq for r, group in zip(fresh, kept, strict=True) for _ in group]
        await c.execute(_INBOX, users, seqs)
        await c.execute(_INBOX_LOG, users, seqs, now)
    outcomes = [(r.seq, o) for r in fresh for o in r.outcomes]
    outcomes += [(fresh[i].seq, DeliveryOutcome(u, *SUPERSEDED_OUTCOME)) for i, u in dropped]
    if outcomes:
        await c.execute(
            _LOG,
            [o.user_id for _, o in outcomes],
            [s for s, _ in outcomes],
            [o.channel for _, o in outcomes],
            [o.attempt for _, o in outcomes],
            [o.outcome.value for _, o in outcomes],
            [o.reason for _, o in outcomes],
            [o.provider_ref for _, o in outcomes],
            now,
        )
    entries = entry_rows(fresh, now)
    if entries:
        await c.execute(_ENTRIES, *(list(column) for column in zip(*entries, strict=True)))
    await _log_unreachable(c, fresh, now)
    invalidated = [i for r in fresh for i in r.invalidated]
    if invalidated:
        await apply_invalidations(c, invalidated, now)
    await c.execute(
        "SELECT 1 FROM events WHERE seq = ANY($1::bigint[]) ORDER BY seq FOR UPDATE",
        sorted({r.seq for r in fresh}),
    )  # lock the events in one order: two workers' progress updates cannot deadlock
    suppressed = suppression_rows(fresh, kept)
    if suppressed:  # behind the events' locks, so these counters never deadlock either
        await c.execute(_SUPPRESSED, *(list(column) for column in zip(*suppressed, strict=True)))
    await c.execute(
        _PROGRESS,
        [r.seq for r in fresh],
        [int(r.completes_batch) for r in fresh],
        [len(group) + r.delivered for r, group in zip(fresh, kept, strict=True)],
        [r.suppressed + len(r.inbox) - len(group) for r, group in zip(fresh, kept, strict=True)],
        [r.held for r in fresh],
        [r.released for r in fresh],
        [r.failed for r in fresh],
        now,
    )
    people = stream_candidates(fresh, kept)
    active = await active_among(c, people, now) if people else set()
    streamed = await append_posts(c, stream_posts(fresh, kept, active), now) if active else []
    return Recorded(len(fresh), streamed)


async def _log_unreachable(c: Connection, fresh: Sequence[BatchResult], now: float) -> None:
    users: list[str] = []
    seqs: list[int] = []
    channels: list[str] = []
    reasons: list[str] = []
    for result in fresh:
        for channel, reason, group in result.unreachable:
            users += group
            seqs += [result.seq] * len(group)
            channels += [channel] * len(group)
            reasons += [reason] * len(group)
    if users:
        await c.execute(_UNREACHABLE_LOG, users, seqs, channels, reasons, now)


async def _collapse(c: Connection, fresh: Sequence[BatchResult]) -> set[tuple[int, UserId]]:
    """Latest wins: each collapsing notification becomes its people's newest of its key if
    it is newer, and its in-app entry replaces theirs; returns the (result index, user) of
    the entries an already recorded one beats. The keys are locked first: a key with no
    row yet has nothing else to lock."""
    pairs = [
        (i, u, r.collapse) for i, r in enumerate(fresh) if r.collapse for u in r.collapse.users
    ]
    if not pairs:
        return set()
    await lock_keys(c, locks.COLLAPSE, [f"{u}\x1f{k.key}" for _, u, k in pairs])
    entries = {(i, u) for i, r in enumerate(fresh) if r.collapse for u in r.inbox}
    dropped: set[tuple[int, UserId]] = set()
    pending: dict[tuple[UserId, Seq], int] = {}  # entries this commit is about to write
    for index, user, collapse in pairs:
        seq = fresh[index].seq
        row = await c.fetchrow(_LATEST_OF, user, collapse.key)
        latest = None if row is None else (Seq(row[0]), float(row[1]))
        if collapse.beaten_by(seq, latest):
            if (index, user) in entries:
                dropped.add((index, user))
            continue
        if latest is not None and latest[0] != seq and (index, user) in entries:
            await c.execute("DELETE FROM inbox WHERE user_id = $1 AND seq = $2", user, latest[0])
            if (user, latest[0]) in pending:
                dropped.add((pending[(user, latest[0])], user))
        if (index, user) in entries:
            pending[(user, seq)] = index
        await c.execute(_NEWEST, user, collapse.key, seq, collapse.created_at)
    return dropped
