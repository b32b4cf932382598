"""Operators: kill switches — stop a type, channel, sender or campaign everywhere, now."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query

from clarion.api.deps import Admin, Services
from clarion.api.format import iso, iso_or_none
from clarion.api.schemas import ErrorOut, KillSwitchIn, KillSwitchList, KillSwitchOut
from clarion.errors import NotFoundError
from clarion.policy.killswitch import KillKind, KillSwitch

router = APIRouter(prefix="/v1/kill-switches", tags=["kill switches"])


def switch_out(switch: KillSwitch) -> KillSwitchOut:
    return KillSwitchOut(
        id=switch.id,
        kind=switch.kind.value,
        value=switch.value,
        reason=switch.reason,
        created_at=iso(switch.created_at),
        created_by=switch.created_by,
        lifted_at=iso_or_none(switch.lifted_at),
        lifted_by=switch.lifted_by,
    )


@router.post(
    "",
    status_code=201,
    response_model=KillSwitchOut,
    responses={400: {"model": ErrorOut}},
    summary="Stop delivery of a type, channel, sender or campaign (within a second)",
)
async def create(body: KillSwitchIn, key: Admin, svc: Services) -> KillSwitchOut:
    kind = next(k for k in KillKind if getattr(body, k.value) is not None)
    value = getattr(body, kind.value)
    switch = KillSwitch(
        id=f"ks_{secrets.token_hex(6)}",
        kind=kind,
        value=str(value.value if kind is KillKind.CHANNEL else value),
        reason=body.reason,
        created_at=svc.runtime.clock.now(),
        created_by=f"{key.sender} (key {key.key_id})",
    )
    await svc.runtime.stores.kill_switches.create(switch)
    return switch_out(switch)


@router.get("", response_model=KillSwitchList, summary="Active kill switches")
async def list_switches(
    _: Admin,
    svc: Services,
    all: Annotated[bool, Query(description="Include lifted switches.")] = False,
) -> KillSwitchList:
    switches = await svc.runtime.stores.kill_switches.list(include_lifted=all)
    return KillSwitchList(items=[switch_out(s) for s in switches])


@router.delete(
    "/{switch_id}",
    response_model=KillSwitchOut,
    responses={404: {"model": ErrorOut}},
    summary="Lift a kill switch",
)
async def lift(switch_id: str, key: Admin, svc: Services) -> KillSwitchOut:
    lifted = await svc.runtime.stores.kill_switches.lift(
        switch_id, svc.runtime.clock.now(), f"{key.sender} (key {key.key_id})"
    )
    if lifted is None:
        raise NotFoundError(f"no active kill switch {switch_id!r} (see GET /v1/kill-switches)")
    return switch_out(lifted)
