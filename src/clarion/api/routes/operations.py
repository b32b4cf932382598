"""The operator's console: dead letters (inspect, replay, purge), senders the dead-letter
guard cut off, and the load level that decides what is shed."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query

from clarion.api.deps import Admin, Caller, Services
from clarion.api.format import iso
from clarion.api.operation_schemas import (
    BlockedSenderList,
    BlockedSenderOut,
    DeadLetterDetail,
    DeadLetterList,
    DeadLetterOut,
    LoadOut,
    Purged,
)
from clarion.api.schemas import ErrorOut
from clarion.api.services import ApiServices
from clarion.broker import DeadLetter
from clarion.errors import NotFoundError
from clarion.pipeline.messages import summarize

router = APIRouter(tags=["operations"])


def _letter(dead: DeadLetter) -> DeadLetterOut:
    summary = summarize(dead.topic, dead.body)
    return DeadLetterOut(
        id=dead.id,
        topic=dead.topic,
        error=dead.error,
        attempts=dead.attempts,
        enqueued_at=iso(dead.enqueued_at),
        failed_at=iso(dead.failed_at),
        event_ids=summary.event_ids if summary else [],
        senders=summary.senders if summary else [],
        recipients=summary.recipients if summary else 0,
    )


async def _find(svc: ApiServices, dead_id: str) -> DeadLetter:
    found = await svc.runtime.broker.dead_letter_by_id(dead_id)
    if found is None:
        raise NotFoundError(f"no dead letter {dead_id!r}")
    return found


@router.get("/v1/dead-letters", response_model=DeadLetterList, summary="Dead letters, newest first")
async def list_dead_letters(
    _: Admin, svc: Services, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> DeadLetterList:
    letters = await svc.runtime.broker.dead_letters(limit=limit)
    return DeadLetterList(items=[_letter(d) for d in letters])


@router.get(
    "/v1/dead-letters/{dead_id}",
    response_model=DeadLetterDetail,
    responses={404: {"model": ErrorOut}},
)
async def get_dead_letter(dead_id: str, _: Admin, svc: Services) -> DeadLetterDetail:
    dead = await _find(svc, dead_id)
    try:
        body = orjson.loads(dead.body)
    except orjson.JSONDecodeError:
        body = dead.body.decode("utf-8", "replace")
    return DeadLetterDetail(**_letter(dead).model_dump(), body=body)


@router.post(
    "/v1/dead-letters/{dead_id}/replay",
    response_model=DeadLetterOut,
    responses={404: {"model": ErrorOut}},
    summary="Put it back on its queue (after fixing the cause)",
)
async def replay_dead_letter(dead_id: str, _: Admin, svc: Services) -> DeadLetterOut:
    dead = await _find(svc, dead_id)
    if not await svc.runtime.broker.replay(dead_id):
        raise NotFoundError(f"no dead letter {dead_id!r}")  # replayed by someone else meanwhile
    return _letter(dead)


@router.delete("/v1/dead-letters/{dead_id}", status_code=204, responses={404: {"model": ErrorOut}})
async def delete_dead_letter(dead_id: str, _: Admin, svc: Services) -> None:
    if not await svc.runtime.broker.purge(dead_id):
        raise NotFoundError(f"no dead letter {dead_id!r}")


@router.delete("/v1/dead-letters", response_model=Purged, summary="Purge every dead letter")
async def purge_dead_letters(_: Admin, svc: Services) -> Purged:
    return Purged(purged=await svc.runtime.broker.purge())


@router.get("/v1/senders/blocked", response_model=BlockedSenderList)
async def blocked_senders(_: Admin, svc: Services) -> BlockedSenderList:
    blocked = await svc.runtime.stores.senders.blocked()
    return BlockedSenderList(
        items=[
            BlockedSenderOut(sender=s, blocked_at=iso(at), reason=reason)
            for s, (at, reason) in sorted(blocked.items())
        ]
    )


@router.post(
    "/v1/senders/{sender}/unblock",
    status_code=204,
    responses={404: {"model": ErrorOut}},
    summary="Let a sender the dead-letter guard blocked send again",
)
async def unblock_sender(sender: str, _: Admin, svc: Services) -> None:
    if not await svc.runtime.stores.senders.unblock(sender):
        raise NotFoundError(f"sender {sender!r} is not blocked")


@router.get("/v1/load", response_model=LoadOut, summary="The load level and queue depths")
async def load(_: Caller, svc: Services) -> LoadOut:
    current = await svc.load.current()
    settings = svc.runtime.settings
    return LoadOut(
        level=current.level.value,
        backlog=current.backlog,
        by_priority={p.value: n for p, n in current.by_priority.items()},
        queues=current.depths,
        held=await svc.runtime.broker.held(),
        shed_p2_at=settings.load_shed_p2,
        shed_p1_at=settings.load_shed_p1,
    )
