"""Audiences: lists of people uploaded once, for campaigns. ``POST /v1/audiences?name=…``
streams user ids (NDJSON, CSV, plain lines, or JSON ``{"user_ids": [...]}``); repeats fold.
An upload that fails half-way leaves nothing behind."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from clarion.api.deps import Caller, Services
from clarion.api.format import iso
from clarion.api.routes.followers import read_ids
from clarion.api.schemas import ErrorOut
from clarion.api.services import ApiServices
from clarion.errors import NotFoundError
from clarion.ids import new_id
from clarion.models import SenderKey
from clarion.stores.records import Audience

router = APIRouter(prefix="/v1/audiences", tags=["campaigns"])
_CHUNK = 20_000
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"user_ids": {"type": "array", "items": {"type": "string"}}},
                }
            },
        },
    }
}


class AudienceOut(BaseModel):
    id: str
    name: str
    size: int
    created_at: str


class AudienceList(BaseModel):
    items: list[AudienceOut]


def _out(a: Audience) -> AudienceOut:
    return AudienceOut(id=a.id, name=a.name, size=a.size, created_at=iso(a.created_at))


@router.post(
    "",
    response_model=AudienceOut,
    status_code=201,
    openapi_extra=_BODY_DOC,
    responses={400: {"model": ErrorOut}},
    summary="Upload an audience (millions of ids, streamed)",
)
async def upload(
    request: Request,
    key: Caller,
    svc: Services,
    name: Annotated[str, Query(min_length=1, max_length=200)] = "audience",
) -> AudienceOut:
    store = svc.runtime.stores.audiences
    audience_id = new_id("aud")
    reader = await read_ids(request, "user_ids")
    try:
        for chunk in reader.chunks(_CHUNK):
            await store.add_members(audience_id, chunk)
        made = Audience(audience_id, key.sender, name, 0, svc.runtime.clock.now())
        return _out(await store.publish(made))
    except BaseException:
        await store.discard(audience_id)
        raise
    finally:
        reader.close()


@router.get("", response_model=AudienceList)
async def listed(key: Caller, svc: Services) -> AudienceList:
    found = await svc.runtime.stores.audiences.listed(None if key.admin else key.sender)
    return AudienceList(items=[_out(a) for a in found])


async def owned(svc: ApiServices, key: SenderKey, audience_id: str) -> Audience:
    found = await svc.runtime.stores.audiences.get(audience_id)
    if found is None or not (key.admin or found.sender == key.sender):
        raise NotFoundError(f"no audience {audience_id!r}")
    return found


@router.get("/{audience_id}", response_model=AudienceOut, responses={404: {"model": ErrorOut}})
async def one(audience_id: str, key: Caller, svc: Services) -> AudienceOut:
    return _out(await owned(svc, key, audience_id))


@router.delete("/{audience_id}", status_code=204, responses={404: {"model": ErrorOut}})
async def delete(audience_id: str, key: Caller, svc: Services) -> Response:
    await owned(svc, key, audience_id)
    await svc.runtime.stores.audiences.discard(audience_id)
    return Response(status_code=204)
