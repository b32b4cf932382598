"""Accepted events and their progress through fan-out and evaluation.

``accept`` is the ingest transaction: idempotency lookup, the sender's token bucket, the
event rows and their first queue messages (into the ``outbox``, which a relay moves to the
broker) commit together. Each sender's requests are serialized by an advisory lock held to
the commit, so two API processes cannot both spend the last token or both take one key.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from clarion.backends.postgres import Connection, PostgresDatabase
from clarion.broker import Outbound
from clarion.models import Event, EventContent, EventStatus
from clarion.stores.accepting import charge, event_row, refusal, split_repeats
from clarion.stores.records import (
    FanoutAdvance,
    FanoutPosition,
    IngestOutcome,
    IngestRequest,
    PlanFirstSteps,
    RateLimited,
)
from clarion.stores.rows import cancel_sql, status, status_columns
from clarion.types import EventId, Seq

STATUS_COLUMNS = status_columns("json_object_agg")

OUTBOX_CHANNEL = "clarion_outbox"

# A whole group's events in one statement: each column travels as an array.
INSERT_EVENTS = """
INSERT INTO events (seq, event_id, sender, type, priority, fan_out, actor, target, object,
                    campaign, template, template_version, collapse_key, title, body,
                    payload, created_at, expires_at, fanout_next_batch, batches_total,
                    recipients, traceparent, state)
SELECT *, 'accepted' FROM unnest(
    $1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::int[], $13::text[], $14::text[],
    $15::text[], $16::text[], $17::float8[], $18::float8[], $19::bigint[], $20::bigint[],
    $21::bigint[], $22::text[])
"""

ADVANCE = """
UPDATE events SET
    fanout_next_batch = $3,
    recipients = recipients + $4,
    batches_total = CASE WHEN $5 THEN $3 ELSE batches_total END,
    state = CASE
        WHEN state IN ('failed', 'killed') THEN state
        WHEN $5 AND batches_done >= $3 AND held = 0 THEN 'completed'
        ELSE 'fanning_out' END,
    completed_at = CASE
        WHEN $5 AND batches_done >= $3 AND held = 0 THEN $6
        ELSE completed_at END,
    error = CASE WHEN state = 'dead_lettered' THEN NULL ELSE error END
WHERE seq = $1 AND fanout_next_batch = $2
"""


class PostgresEventStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def accept(
        self, requests: Sequence[IngestRequest], plan: PlanFirstSteps, now: float
    ) -> list[IngestOutcome]:
        async with self._db.transaction() as c:
            for sender in sorted({r.sender for r in requests}):  # one order: no deadlocks
                await c.execute("SELECT pg_advisory_xact_lock(hashtext($1))", sender)
            outcomes: list[IngestOutcome] = []
            fresh: list[Event] = []
            for request in requests:
                outcome, new = await _accept_one(c, request, now)
                fresh += new
                outcomes.append(outcome)
            if fresh:
                await _insert(c, fresh, plan, now)
        if fresh:
            self._db.outbox_commits += 1
        return outcomes

    async def status(self, event_id: EventId) -> EventStatus | None:
        row = await self._db.fetchrow(
            f"SELECT {STATUS_COLUMNS} FROM events WHERE event_id = $1", event_id
        )
        return None if row is None else status(row)

    async def traced(self, trace_id: str, *, limit: int) -> list[EventStatus]:
        rows = await self._db.fetch(
            f"SELECT {STATUS_COLUMNS} FROM events WHERE substr(traceparent, 4, 32) = $1"
            " AND traceparent IS NOT NULL ORDER BY seq DESC LIMIT $2",
            trace_id,
            limit,
        )
        return [status(r) for r in rows]

    async def cancel(self, event_id: EventId, sender: str | None, now: float) -> bool | None:
        async with self._db.transaction() as c:
            owner = await c.fetchval("SELECT sender FROM events WHERE event_id = $1", event_id)
            if owner is None or (sender is not None and owner != sender):
                return None
            done = await c.fetchval(
                f"WITH x AS ({cancel_sql('$1', '$2')} RETURNING 1) SELECT count(*) FROM x",
                now,
                event_id,
            )
            return bool(done)

    async def count(self) -> int:
        return int(await self._db.fetchval("SELECT count(*) FROM events"))

    async def contents(self, seqs: Sequence[Seq]) -> dict[Seq, EventContent]:
        rows = await self._db.fetch(
            "SELECT seq, type, actor, object, title, body, payload, template, template_version,"
            " collapse_key, sender FROM events WHERE seq = ANY($1::bigint[])",
            list(seqs),
        )
        return {
            Seq(r[0]): EventContent(
                r[1], r[2], r[3], r[4], r[5], orjson.loads(r[6]), r[7], r[8], r[9], r[10]
            )
            for r in rows
        }

    async def positions(self, seqs: Sequence[Seq]) -> dict[Seq, FanoutPosition]:
        rows = await self._db.fetch(
            "SELECT seq, fanout_next_batch, batches_total IS NOT NULL,"
            " state IN ('failed', 'cancelled')"
            " FROM events WHERE seq = ANY($1::bigint[])",
            list(seqs),
        )
        return {Seq(r[0]): FanoutPosition(r[1], bool(r[2]), bool(r[3])) for r in rows}

    async def advance(self, advances: Sequence[FanoutAdvance], now: float) -> None:
        if advances:
            async with self._db.transaction() as c:
                await c.executemany(
                    ADVANCE,
                    [
                        (a.seq, a.from_batch, a.to_batch, a.recipients, a.finished, now)
                        for a in sorted(advances, key=lambda a: a.seq)
                    ],
                )

    async def fail(self, seq: Seq, error: str, *, state: str = "failed") -> None:
        await self._db.execute(
            "UPDATE events SET state = $1, error = $2 WHERE seq = $3", state, error, seq
        )


async def _accept_one(
    c: Connection, request: IngestRequest, now: float
) -> tuple[IngestOutcome, list[Event]]:
    """Decide one request: which events are new, which repeat a key, and whether it fits."""
    keys = [e.idempotency_key for e in request.events]
    seen: dict[str, str] = {
        r[0]: r[1]
        for r in await c.fetch(
            "SELECT key, event_id FROM idempotency WHERE key = ANY($1::text[]) AND expires_at > $2",
            keys,
            now,
        )
    }
    accepted, fresh = split_repeats(request.events, seen)
    refused = refusal(request, fresh)
    if refused is not None:
        return refused, []
    if fresh and request.rate_per_s is not None:
        wait = await _spend(c, request, len(fresh), now)
        if wait > 0:
            return RateLimited(wait), []
    return accepted, fresh


async def _spend(c: Connection, request: IngestRequest, need: int, now: float) -> float:
    row = await c.fetchrow(
        "SELECT tokens, updated_at FROM rate_buckets WHERE sender = $1", request.sender
    )
    bucket, wait = charge(row, request, need, now)
    if wait == 0:
        await c.execute(
            "INSERT INTO rate_buckets (sender, tokens, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (sender) DO UPDATE SET tokens = excluded.tokens,"
            " updated_at = excluded.updated_at",
            request.sender,
            bucket.tokens,
            bucket.updated_at,
        )
    return wait


async def _insert(c: Connection, events: list[Event], plan: PlanFirstSteps, now: float) -> None:
    seqs = sorted(
        r[0]
        for r in await c.fetch(
            "SELECT nextval('events_seq') FROM generate_series(1, $1)", len(events)
        )
    )
    steps = plan([(e, Seq(seq)) for seq, e in zip(seqs, events, strict=True)])
    rows = [
        event_row(seq, e, batches, recipients)
        for seq, e, (batches, recipients) in zip(seqs, events, steps.progress, strict=True)
    ]
    await c.execute(INSERT_EVENTS, *(list(column) for column in zip(*rows, strict=True)))
    await c.execute(
        "INSERT INTO idempotency (key, event_id, expires_at)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::float8[])"
        " ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id,"
        " expires_at = excluded.expires_at",
        [e.idempotency_key for e in events],
        [e.event_id for e in events],
        [e.idempotency_expires_at for e in events],
    )
    await enqueue(c, steps.outbound, now)


async def enqueue(c: Connection, messages: Sequence[Outbound], now: float) -> None:
    """Put messages in the outbox, in the caller's transaction; a relay is told on commit."""
    if not messages:
        return
    assert all(m.dead_letter is None for m in messages), "the outbox carries live messages"
    await c.execute(
        "INSERT INTO outbox (topic, body, enqueued_at, available_at)"
        " SELECT t, b, $3, $3 + d FROM unnest($1::text[], $2::bytea[], $4::float8[]) AS m(t, b, d)",
        [m.topic for m in messages],
        [m.body for m in messages],
        now,
        [m.delay_s for m in messages],
    )
    await c.execute(f"NOTIFY {OUTBOX_CHANNEL}")
