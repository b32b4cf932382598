"""The parts of the ingest transaction that do not depend on the database (both backends'
``EventStore.accept`` run them between their own reads and writes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from clarion.ingest.ratelimit import Bucket, take
from clarion.models import Event
from clarion.stores.records import Accepted, IngestRequest, RateLimited
from clarion.types import EventId


def split_repeats(
    events: Sequence[Event], seen: Mapping[str, str]
) -> tuple[list[Accepted], list[Event]]:
    """Each event's answer, and the events that are new: a key already stored (``seen``:
    key → original event id) or repeated within the request answers with the first id."""
    known = dict(seen)
    fresh: list[Event] = []
    accepted: list[Accepted] = []
    for event in events:
        original = known.get(event.idempotency_key)
        if original is not None:
            accepted.append(Accepted(EventId(original), duplicate=True))
            continue
        known[event.idempotency_key] = event.event_id
        fresh.append(event)
        accepted.append(Accepted(event.event_id))
    return accepted, fresh


def refusal(request: IngestRequest, fresh: Sequence[Event]) -> RateLimited | None:
    """A request that a limiter in front of the store refused (``refused_wait``) stays
    refused, unless none of its events is new (a repeat is answered, and costs nothing)."""
    if fresh and request.refused_wait is not None:
        return RateLimited(request.refused_wait)
    return None


def charge(
    stored: tuple[float, float] | None, request: IngestRequest, need: int, now: float
) -> tuple[Bucket, float]:
    """Spend ``need`` tokens from the sender's bucket as stored (tokens, updated_at):
    the bucket to write back, and the wait (0: granted)."""
    assert request.rate_per_s is not None
    return take(
        None if stored is None else Bucket(stored[0], stored[1]),
        rate_per_s=request.rate_per_s,
        burst_s=request.burst,
        need=need,
        now=now,
    )


def event_row(seq: int, e: Event, batches: int, recipients: int) -> tuple[Any, ...]:
    """An ``events`` row's values in insert order (see the stores' ``_INSERT_EVENT``):
    ``batches`` and ``recipients`` are what ingest already planned (a direct event's batch)."""
    return (
        seq,
        e.event_id,
        e.sender,
        e.type,
        e.priority.value,
        e.fan_out.value,
        e.actor,
        e.target,
        e.object,
        e.campaign,
        e.template,
        e.template_version,
        e.collapse_key,
        e.title,
        e.body,
        orjson.dumps(e.payload).decode(),
        e.created_at,
        e.expires_at,
        batches,
        batches or None,
        recipients,
        e.traceparent,
    )
