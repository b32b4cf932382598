"""Producers follow their events here (sending is served by ``api.ingest``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from clarion.api.deps import Caller, Services
from clarion.api.format import iso, iso_or_none
from clarion.api.schemas import ErrorOut, EventStatusList, EventStatusOut
from clarion.errors import ConflictError, NotFoundError
from clarion.models import EventStatus
from clarion.types import EventId

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


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
    return _out(found)


@router.delete(
    "/{event_id}",
    status_code=204,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    summary="Cancel an event that has not started (a scheduled send before its time)",
)
async def cancel(event_id: str, key: Caller, svc: Services) -> Response:
    done = await svc.runtime.stores.events.cancel(
        EventId(event_id), None if key.admin else key.sender, svc.runtime.clock.now()
    )
    if done is None:
        raise NotFoundError(f"no event {event_id!r} sent by {key.sender!r}")
    if not done:
        raise ConflictError(f"event {event_id} is on its way or over: too late to cancel it")
    return Response(status_code=204)


@router.get(
    "",
    response_model=EventStatusList,
    responses={400: {"model": ErrorOut}},
    summary="Events sent with a trace id (W3C traceparent), newest first",
)
async def traced(
    key: Caller,
    svc: Services,
    trace_id: Annotated[str, Query(pattern="^[0-9a-f]{32}$", description="32 hex digits")],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventStatusList:
    found = await svc.runtime.stores.events.traced(trace_id, limit=limit)
    return EventStatusList(items=[_out(s) for s in found if key.admin or s.sender == key.sender])


def _out(found: EventStatus) -> EventStatusOut:
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
        suppressed_by=found.suppressed_by,
        held=found.held,
        failed=found.failed,
        created_at=iso(found.created_at),
        first_delivery_at=iso_or_none(found.first_delivery_at),
        completed_at=iso_or_none(found.completed_at),
        error=found.error,
        trace_id=found.trace_id,
    )
