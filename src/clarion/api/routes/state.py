"""Keyed state per person, latest wins (``live.state``): the product sets it, every
connected device of the person hears it. A P0 change (a membership, an entitlement) must
be acknowledged by every device within 10 s, or the device gets a background push telling
the app to refetch ``GET /v1/me/state`` (``live.critical``)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from pydantic import TypeAdapter, ValidationError

from clarion.api.deps import Caller, Services
from clarion.api.errors import problems_from_pydantic
from clarion.api.live_schemas import StateBatchIn, StateKey, StatePutIn, StatePutOut
from clarion.api.routes.users import user_id_of
from clarion.api.schemas import ErrorOut
from clarion.api.services import ApiServices
from clarion.errors import InputError
from clarion.live.log import Post
from clarion.live.state import state_post
from clarion.models import SenderKey
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


STATE_BATCH_PATH = "/v1/state"
_STATE_BATCH = TypeAdapter(StateBatchIn)


async def put_state_batch(
    svc: ApiServices, key: SenderKey, body: bytes, trace: str | None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``POST /v1/state``: up to 1,000 pieces of state at once (playback positions, …).

    Served ahead of FastAPI (``api.ingest.IngestFront``), as ingest is: at 15,000 updates a
    second its routing, dependency injection and JSON decoding were a tenth of the API's
    time. Documented by hand in ``api.openapi``."""
    try:
        batch = _STATE_BATCH.validate_json(body)
    except ValidationError as exc:
        raise InputError(problems_from_pydantic(exc.errors())) from None
    posts = [
        _post(UserId(u.user_id), u.key, u, f"updates[{n}].value")
        for n, u in enumerate(batch.updates)
    ]
    puts = await svc.put_states(posts)
    applied = sum(1 for p in puts if p.applied)
    return 200, {"applied": applied, "ignored": len(puts) - applied}, {}
