"""Keyed state per person, latest wins (``live.state``): the product sets it, every
connected device of the person hears it. A P0 change (a membership, an entitlement) must
be acknowledged by every device within 10 s, or the device gets a background push telling
the app to refetch ``GET /v1/me/state`` (``live.critical``)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter

from clarion.api.deps import Caller, Services
from clarion.api.live_schemas import (
    StateBatchIn,
    StateBatchOut,
    StateKey,
    StatePutIn,
    StatePutOut,
)
from clarion.api.routes.users import user_id_of
from clarion.api.schemas import ErrorOut
from clarion.errors import InputError
from clarion.live.log import Post
from clarion.live.state import state_post
from clarion.types import UserId

router = APIRouter(tags=["state"])
MAX_VALUE_BYTES = 16 * 1024


def _post(user: UserId, key: str, body: StatePutIn, field: str) -> Post:
    if len(orjson.dumps(body.value)) > MAX_VALUE_BYTES:
        raise InputError.single(field, f"over {MAX_VALUE_BYTES // 1024} KiB")
    return state_post(user, key, body.value, body.version, critical=body.priority == "P0")


@router.put(
    "/v1/users/{user_id}/state/{key}",
    response_model=StatePutOut,
    responses={400: {"model": ErrorOut}},
    summary="Set one piece of a person's state; every device of theirs hears it",
)
async def put_state(
    user_id: str, key: StateKey, body: StatePutIn, _: Caller, svc: Services
) -> StatePutOut:
    (put,) = await svc.put_states([_post(user_id_of(user_id), key, body, "value")])
    return StatePutOut(
        applied=put.applied, position=None if put.entry is None else put.entry.position
    )


@router.post(
    "/v1/state",
    response_model=StateBatchOut,
    responses={400: {"model": ErrorOut}},
    summary="Set up to 1,000 pieces of state at once (playback positions, …)",
)
async def put_states(body: StateBatchIn, _: Caller, svc: Services) -> StateBatchOut:
    posts = [
        _post(UserId(u.user_id), u.key, u, f"updates[{n}].value")
        for n, u in enumerate(body.updates)
    ]
    puts = await svc.put_states(posts)
    applied = sum(1 for p in puts if p.applied)
    return StateBatchOut(applied=applied, ignored=len(puts) - applied)
