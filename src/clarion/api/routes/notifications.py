"""Producers follow their events here (sending is served by ``api.ingest``)."""

from __future__ import annotations

from fastapi import APIRouter

from clarion.api.deps import Caller, Services
from clarion.api.format import iso, iso_or_none
from clarion.api.schemas import ErrorOut, EventStatusOut
from clarion.errors import NotFoundError
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
        held=found.held,
        failed=found.failed,
        created_at=iso(found.created_at),
        first_delivery_at=iso_or_none(found.first_delivery_at),
        completed_at=iso_or_none(found.completed_at),
        error=found.error,
    )
