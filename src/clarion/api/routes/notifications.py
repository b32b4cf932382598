"""Producers: send events (one or a batch) and follow their progress."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Response
from pydantic import TypeAdapter, ValidationError

from clarion.api.deps import Caller, Services
from clarion.api.errors import problems_from_pydantic, status_of
from clarion.api.format import iso, iso_or_none
from clarion.api.schemas import (
    BatchIn,
    BatchItemOut,
    BatchOut,
    ErrorOut,
    EventAccepted,
    EventIn,
    EventStatusOut,
    FieldErrorOut,
)
from clarion.api.services import ApiServices
from clarion.errors import ClarionError, InputError, NotFoundError, RateLimitedError
from clarion.ingest.validation import EventRequest, build_event
from clarion.models import Event, SenderKey
from clarion.stores.base import Accepted, IngestRequest, RateLimited
from clarion.types import EventId

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 429, 503)
}
_EVENT = TypeAdapter(EventIn)


def _request(body: EventIn) -> EventRequest:
    return EventRequest(
        type=body.type,
        actor=body.actor,
        target=body.target,
        recipients=None if body.recipients is None else tuple(body.recipients),
        fan_out=body.fan_out,
        object=body.object,
        payload=body.payload,
        priority=body.priority,
        ttl_seconds=body.ttl_seconds,
        idempotency_key=body.idempotency_key,
    )


async def _prepare(svc: ApiServices, key: SenderKey, body: EventIn, prefix: str = "") -> Event:
    spec = await svc.types.get(body.type)
    return build_event(
        _request(body), spec, key, limits=svc.limits, now=svc.runtime.clock.now(), prefix=prefix
    )


async def _submit(svc: ApiServices, key: SenderKey, events: list[Event]) -> list[Accepted]:
    outcome = await svc.writer.submit(
        IngestRequest(key.sender, key.rate_per_s, svc.runtime.settings.rate_burst_s, events)
    )
    if isinstance(outcome, RateLimited):
        if math.isinf(outcome.retry_after_s):
            burst = max(1, int((key.rate_per_s or 0) * svc.runtime.settings.rate_burst_s))
            raise InputError.single(
                "events", f"{len(events)} new events exceed this sender's burst of {burst}"
            )
        raise RateLimitedError(
            f"sender {key.sender!r} is over its rate of {key.rate_per_s:g} events/s",
            outcome.retry_after_s,
        )
    return outcome


@router.post(
    "",
    status_code=202,
    response_model=EventAccepted,
    responses={
        200: {"model": EventAccepted, "description": "A repeat: the original event"},
        **_ERRORS,
    },
    summary="Send one event",
)
async def send(body: EventIn, key: Caller, svc: Services, response: Response) -> EventAccepted:
    event = await _prepare(svc, key, body)
    (accepted,) = await _submit(svc, key, [event])
    if accepted.duplicate:
        response.status_code = 200
    return EventAccepted(event_id=accepted.event_id, duplicate=accepted.duplicate)


@router.post("/batch", response_model=BatchOut, responses=_ERRORS, summary="Send many events")
async def send_batch(body: BatchIn, key: Caller, svc: Services) -> BatchOut:
    limit = svc.runtime.settings.max_batch_events
    if len(body.events) > limit:
        raise InputError.single("events", f"{len(body.events)} events is over the limit of {limit}")
    results: list[BatchItemOut] = []
    pending: list[tuple[int, Event]] = []
    for index, raw in enumerate(body.events):
        try:
            event = await _prepare(svc, key, _EVENT.validate_python(raw))
        except ValidationError as exc:
            results.append(_refused(InputError(problems_from_pydantic(exc.errors()))))
        except ClarionError as exc:
            results.append(_refused(exc))
        else:
            pending.append((index, event))
            results.append(BatchItemOut(status=202))
    accepted = await _submit(svc, key, [e for _, e in pending]) if pending else []
    for (index, _), outcome in zip(pending, accepted, strict=True):
        results[index] = BatchItemOut(
            status=200 if outcome.duplicate else 202,
            event_id=outcome.event_id,
            duplicate=outcome.duplicate,
        )
    duplicates = sum(1 for a in accepted if a.duplicate)
    return BatchOut(
        accepted=len(accepted) - duplicates,
        duplicates=duplicates,
        rejected=len(results) - len(accepted),
        results=results,
    )


def _refused(exc: ClarionError) -> BatchItemOut:
    status, code = status_of(exc)
    problems = exc.problems if isinstance(exc, InputError) else ()
    return BatchItemOut(
        status=status,
        error=code if problems else f"{code}: {exc}",
        errors=[FieldErrorOut(field=p.field, reason=p.reason) for p in problems],
    )


@router.get(
    "/{event_id}",
    response_model=EventStatusOut,
    responses={404: {"model": ErrorOut}},
    summary="Progress of one event",
)
async def status(event_id: str, key: Caller, svc: Services) -> EventStatusOut:
    found = await svc.runtime.stores.events.status(EventId(event_id))
    if found is None or not (key.admin or found.sender == key.sender):
        raise NotFoundError(f"no event {event_id!r} sent by {key.sender!r}")
    return EventStatusOut(
        event_id=found.event_id,
        type=found.type,
        priority=found.priority,
        state=found.state,
        recipients=found.recipients,
        batches_total=found.batches_total,
        batches_done=found.batches_done,
        delivered=found.delivered,
        suppressed=found.suppressed,
        created_at=iso(found.created_at),
        first_delivery_at=iso_or_none(found.first_delivery_at),
        completed_at=iso_or_none(found.completed_at),
        error=found.error,
    )
