"""The follower graph, in bulk: a JSON list, or a streamed NDJSON / CSV / plain-text body."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError

from clarion.api.deps import Admin, Services
from clarion.api.errors import problems_from_pydantic
from clarion.api.openapi import schema_ref
from clarion.api.schemas import ErrorOut, FollowerCount, FollowersChanged, FollowersIn
from clarion.api.services import ApiServices
from clarion.errors import InputError
from clarion.idlists import IdListFormat, IdListReader
from clarion.types import UserId
from clarion.validation import check_user_id

router = APIRouter(prefix="/v1/users", tags=["followers"])

_APPLY_CHUNK = 20_000
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": schema_ref("FollowersIn")},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


async def read_ids(request: Request, field: str = "followers") -> IdListReader:
    """The whole body, validated, spooled; raises before anything is applied. JSON is an
    object with the list under ``field``; NDJSON, CSV and plain lines are streamed."""
    content_type = request.headers.get("content-type", "application/json")
    fmt = IdListFormat.from_content_type(content_type)
    reader = IdListReader(fmt or IdListFormat.LINES)
    try:
        if fmt is None:
            await _read_json(request, reader, field)
        else:
            async for chunk in request.stream():
                reader.feed(chunk)
        reader.finish()
    except BaseException:
        reader.close()
        raise
    return reader


async def _read_json(request: Request, reader: IdListReader, field: str) -> None:
    try:
        doc = orjson.loads(await request.body())
        if isinstance(doc, dict) and field in doc:
            doc = {"followers": doc.pop(field), **doc}
        body = FollowersIn.model_validate(doc)
    except orjson.JSONDecodeError as exc:
        raise InputError.single("body", f"not valid JSON ({exc})") from None
    except ValidationError as exc:
        problems = problems_from_pydantic(exc.errors())
        raise InputError(
            [type(p)(p.field.replace("followers", field, 1), p.reason) for p in problems]
        ) from None
    reader.feed("\n".join(body.followers).encode() + b"\n")


async def _apply(svc: ApiServices, creator: UserId, request: Request, *, add: bool) -> int:
    reader = await read_ids(request)
    store = svc.runtime.stores.followers
    changed = 0
    try:
        for chunk in reader.chunks(_APPLY_CHUNK):
            changed += await (store.add(creator, chunk) if add else store.remove(creator, chunk))
    finally:
        reader.close()
    return changed


@router.post(
    "/{creator_id}/followers",
    response_model=FollowersChanged,
    openapi_extra=_BODY_DOC,
    responses={400: {"model": ErrorOut}},
    summary="Add followers in bulk",
)
async def add_followers(
    creator_id: str, request: Request, _: Admin, svc: Services
) -> FollowersChanged:
    creator = UserId(check_user_id("creator_id", creator_id))
    added = await _apply(svc, creator, request, add=True)
    return FollowersChanged(added=added, count=await svc.runtime.stores.followers.count(creator))


@router.delete(
    "/{creator_id}/followers",
    response_model=FollowersChanged,
    openapi_extra=_BODY_DOC,
    responses={400: {"model": ErrorOut}},
    summary="Remove followers in bulk",
)
async def remove_followers(
    creator_id: str, request: Request, _: Admin, svc: Services
) -> FollowersChanged:
    creator = UserId(check_user_id("creator_id", creator_id))
    removed = await _apply(svc, creator, request, add=False)
    return FollowersChanged(
        removed=removed, count=await svc.runtime.stores.followers.count(creator)
    )


@router.get("/{creator_id}/followers/count", response_model=FollowerCount)
async def follower_count(creator_id: str, _: Admin, svc: Services) -> FollowerCount:
    creator = UserId(check_user_id("creator_id", creator_id))
    return FollowerCount(count=await svc.runtime.stores.followers.count(creator))
