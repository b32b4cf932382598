"""Accepted events and their progress through fan-out and evaluation.

``accept`` is the ingest transaction: idempotency lookup, the sender's token bucket, the
event rows and their fan-out queue messages commit together, so a 202 always has its
queue message and an error never leaves one behind. Sequence numbers are handed out under
the write lock (``max(seq) + 1``), which lets a whole request be inserted with one
``executemany``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.broker import SqliteBroker
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
from clarion.stores.rows import cancel_sql, status_columns
from clarion.stores.rows import status as _status
from clarion.types import EventId, Seq

_STATUS_COLUMNS = status_columns("json_group_object")

INSERT_EVENT = """
INSERT INTO events (seq, event_id, sender, type, priority, fan_out, actor, target, object,
                    campaign, template, template_version, collapse_key, title, body,
                    payload, created_at, expires_at, state,
                    fanout_next_batch, batches_total, recipients, traceparent)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?, ?)
"""

ADVANCE = """
UPDATE events SET
    fanout_next_batch = :to_batch,
    recipients = recipients + :recipients,
    batches_total = CASE WHEN :finished THEN :to_batch ELSE batches_total END,
    state = CASE
        WHEN state IN ('failed', 'killed') THEN state
        WHEN :finished AND batches_done >= :to_batch AND held = 0 THEN 'completed'
        ELSE 'fanning_out' END,
    completed_at = CASE
        WHEN :finished AND batches_done >= :to_batch AND held = 0 THEN :now
        ELSE completed_at END,
    error = CASE WHEN state = 'dead_lettered' THEN NULL ELSE error END
WHERE seq = :seq AND fanout_next_batch = :from_batch
"""


class SqliteEventStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def accept(
        self, requests: Sequence[IngestRequest], plan: PlanFirstSteps, now: float
    ) -> list[IngestOutcome]:
        return await self._db.write(lambda c: _accept_all(c, requests, plan, now))

    async def status(self, event_id: EventId) -> EventStatus | None:
        row = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_STATUS_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
            ).fetchone()
        )
        return None if row is None else _status(row)

    async def traced(self, trace_id: str, *, limit: int) -> list[EventStatus]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_STATUS_COLUMNS} FROM events WHERE substr(traceparent, 4, 32) = ?"
                " AND traceparent IS NOT NULL ORDER BY seq DESC LIMIT ?",
                (trace_id, limit),
            ).fetchall()
        )
        return [_status(r) for r in rows]

    async def cancel(self, event_id: EventId, sender: str | None, now: float) -> bool | None:
        def _cancel(c: sqlite3.Connection) -> bool | None:
            row = c.execute("SELECT sender FROM events WHERE event_id = ?", (event_id,)).fetchone()
            if row is None or (sender is not None and row[0] != sender):
                return None
            return bool(c.execute(cancel_sql("?1", "?2"), (now, event_id)).rowcount)

        return await self._db.write(_cancel)

    async def count(self) -> int:
        row = await self._db.read(lambda c: c.execute("SELECT count(*) FROM events").fetchone())
        return int(row[0])

    async def contents(self, seqs: Sequence[Seq]) -> dict[Seq, EventContent]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT e.seq, e.type, e.actor, e.object, e.title, e.body, e.payload, e.template,"
                " e.template_version, e.collapse_key, e.sender FROM json_each(?) j"
                " CROSS JOIN events e ON e.seq = j.value",
                (orjson.dumps(list(seqs)),),
            ).fetchall()
        )
        return {
            Seq(r[0]): EventContent(
                r[1], r[2], r[3], r[4], r[5], orjson.loads(r[6]), r[7], r[8], r[9], r[10]
            )
            for r in rows
        }

    async def positions(self, seqs: Sequence[Seq]) -> dict[Seq, FanoutPosition]:
        ids = orjson.dumps(list(seqs))
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT seq, fanout_next_batch, batches_total IS NOT NULL,"
                " state IN ('failed', 'cancelled')"
                " FROM events WHERE seq IN (SELECT value FROM json_each(?))",
                (ids,),
            ).fetchall()
        )
        return {Seq(r[0]): FanoutPosition(r[1], bool(r[2]), bool(r[3])) for r in rows}

    async def advance(self, advances: Sequence[FanoutAdvance], now: float) -> None:
        params = [
            {
                "seq": a.seq,
                "from_batch": a.from_batch,
                "to_batch": a.to_batch,
                "recipients": a.recipients,
                "finished": int(a.finished),
                "now": now,
            }
            for a in advances
        ]
        if params:
            await self._db.write(lambda c: c.executemany(ADVANCE, params))

    async def fail(self, seq: Seq, error: str, *, state: str = "failed") -> None:
        await self._db.write(
            lambda c: c.execute(
                "UPDATE events SET state = ?, error = ? WHERE seq = ?", (state, error, seq)
            )
        )


def _accept_all(
    c: sqlite3.Connection, requests: Sequence[IngestRequest], plan: PlanFirstSteps, now: float
) -> list[IngestOutcome]:
    next_seq = int(c.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0])
    outcomes: list[IngestOutcome] = []
    fresh: list[Event] = []
    for request in requests:
        outcome, new = _accept_one(c, request, now)
        fresh += new
        outcomes.append(outcome)
    if fresh:
        _insert(c, fresh, range(next_seq, next_seq + len(fresh)), plan, now)
    return outcomes


def _accept_one(
    c: sqlite3.Connection, request: IngestRequest, now: float
) -> tuple[IngestOutcome, list[Event]]:
    """Decide one request: which events are new, which repeat a key, and whether it fits."""
    keys = [e.idempotency_key for e in request.events]
    seen = dict(
        c.execute(
            "SELECT key, event_id FROM idempotency"
            " WHERE key IN (SELECT value FROM json_each(?)) AND expires_at > ?",
            (orjson.dumps(keys), now),
        ).fetchall()
    )
    accepted, fresh = split_repeats(request.events, seen)
    refused = refusal(request, fresh)
    if refused is not None:
        return refused, []
    if fresh and request.rate_per_s is not None:
        wait = _spend(c, request, len(fresh), now)
        if wait > 0:
            return RateLimited(wait), []
    return accepted, fresh


def _spend(c: sqlite3.Connection, request: IngestRequest, need: int, now: float) -> float:
    row = c.execute(
        "SELECT tokens, updated_at FROM rate_buckets WHERE sender = ?", (request.sender,)
    ).fetchone()
    bucket, wait = charge(row, request, need, now)
    if wait == 0:
        c.execute(
            "INSERT INTO rate_buckets (sender, tokens, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (sender) DO UPDATE SET tokens = excluded.tokens,"
            " updated_at = excluded.updated_at",
            (request.sender, bucket.tokens, bucket.updated_at),
        )
    return wait


def _insert(
    c: sqlite3.Connection,
    events: list[Event],
    seqs: range,
    plan: PlanFirstSteps,
    now: float,
) -> None:
    steps = plan([(e, Seq(seq)) for seq, e in zip(seqs, events, strict=True)])
    c.executemany(
        INSERT_EVENT,
        [
            event_row(seq, e, batches, recipients)
            for seq, e, (batches, recipients) in zip(seqs, events, steps.progress, strict=True)
        ],
    )
    c.executemany(
        "INSERT OR REPLACE INTO idempotency (key, event_id, expires_at) VALUES (?, ?, ?)",
        [(e.idempotency_key, e.event_id, e.idempotency_expires_at) for e in events],
    )
    SqliteBroker.enqueue(c, steps.outbound, now)
