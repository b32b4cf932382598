"""Recurring sends: ``POST /v1/schedules`` ``{cron, timezone, event}`` sends ``event`` (as
``POST /v1/notifications`` takes it) at every run of ``cron`` in ``timezone``
(``scheduling``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from clarion.api.deps import Caller, Services
from clarion.api.errors import problems_from_pydantic
from clarion.api.format import iso, iso_or_none
from clarion.api.schemas import ErrorOut, EventIn, Strict
from clarion.api.services import ApiServices
from clarion.errors import FieldProblem, InputError, NotFoundError
from clarion.ids import new_id
from clarion.ingest.prepare import Lookups, prepare_event
from clarion.models import SenderKey
from clarion.scheduling import cron
from clarion.stores.records import Schedule

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


class ScheduleIn(Strict):
    cron: Annotated[str, StringConstraints(max_length=100)] = Field(
        description="Five fields (minute hour day month weekday), e.g. '0 9 * * mon-fri'."
    )
    timezone: Annotated[str, StringConstraints(max_length=64)] = Field(
        "UTC", description="IANA zone the cron reads in (DST-correct)."
    )
    event: dict[str, Any] = Field(description="The event to send, as POST /v1/notifications.")


class ScheduleOut(BaseModel):
    id: str
    cron: str
    timezone: str
    event: dict[str, Any]
    next_run_at: str
    last_run_at: str | None
    created_at: str


class ScheduleList(BaseModel):
    items: list[ScheduleOut]


def _out(s: Schedule) -> ScheduleOut:
    return ScheduleOut(
        id=s.id,
        cron=s.cron,
        timezone=s.timezone,
        event=s.event,
        next_run_at=iso(s.next_run_at),
        last_run_at=iso_or_none(s.last_run_at),
        created_at=iso(s.created_at),
    )


@router.post("", response_model=ScheduleOut, status_code=201, responses={400: {"model": ErrorOut}})
async def create(body: ScheduleIn, key: Caller, svc: Services) -> ScheduleOut:
    now = svc.runtime.clock.now()
    problems = [FieldProblem(*p) for p in cron.problems(body.cron, body.timezone)]
    await _check_event(body.event, key, svc, now, problems)
    if problems:
        raise InputError(problems)
    schedule = Schedule(
        new_id("sch"),
        key.sender,
        body.cron,
        body.timezone,
        body.event,
        cron.next_after(body.cron, body.timezone, now),
        now,
    )
    await svc.runtime.stores.schedules.create(schedule)
    return _out(schedule)


async def _check_event(
    doc: dict[str, Any],
    key: SenderKey,
    svc: ApiServices,
    now: float,
    problems: list[FieldProblem],
) -> None:
    """The event as it will be sent at each run (its fields named ``event.…``)."""
    if "send_at" in doc:
        problems.append(FieldProblem("event.send_at", "the schedule decides when it is sent"))
        return
    try:
        event = EventIn.model_validate(doc)
        await prepare_event(
            Lookups(svc.types.get, svc.template_version), key, event, svc.limits, now
        )
    except ValidationError as exc:
        found = problems_from_pydantic(exc.errors())
        problems += [FieldProblem(f"event.{p.field}", p.reason) for p in found]
    except InputError as exc:
        problems += [FieldProblem(f"event.{p.field}", p.reason) for p in exc.problems]


@router.get("", response_model=ScheduleList)
async def listed(key: Caller, svc: Services) -> ScheduleList:
    found = await svc.runtime.stores.schedules.listed(None if key.admin else key.sender)
    return ScheduleList(items=[_out(s) for s in found])


@router.get("/{schedule_id}", response_model=ScheduleOut, responses={404: {"model": ErrorOut}})
async def one(schedule_id: str, key: Caller, svc: Services) -> ScheduleOut:
    found = await svc.runtime.stores.schedules.get(schedule_id)
    if found is None or not (key.admin or found.sender == key.sender):
        raise NotFoundError(f"no schedule {schedule_id!r}")
    return _out(found)


@router.delete("/{schedule_id}", status_code=204, responses={404: {"model": ErrorOut}})
async def delete(schedule_id: str, key: Caller, svc: Services) -> Response:
    if not await svc.runtime.stores.schedules.delete(
        schedule_id, None if key.admin else key.sender
    ):
        raise NotFoundError(f"no schedule {schedule_id!r}")
    return Response(status_code=204)
