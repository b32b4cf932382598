"""``/v1/me``: everything a person's own device may do, with a user token (``live.tokens``)
— the inbox, marking read, preferences, devices, keyed state, acknowledgements, and the
live stream over SSE or WebSocket. A token reaches its own person's data and nothing else:
no route here takes a user id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clarion.api import inbox_view
from clarion.api.channel_schemas import DeviceIn, DeviceList, DeviceOut
from clarion.api.deps import Caller, Services
from clarion.api.format import iso
from clarion.api.live_schemas import (
    AckIn,
    StateItemOut,
    StateOut,
    TicketOut,
    TokenIn,
    TokenOut,
)
from clarion.api.routes import devices, preferences
from clarion.api.routes.users import user_id_of
from clarion.api.schemas import (
    ErrorOut,
    InboxOut,
    PreferencesIn,
    PreferencesOut,
    ReadIn,
    ReadOut,
)
from clarion.api.services import ApiServices
from clarion.errors import InputError, UnauthenticatedError
from clarion.live import tokens
from clarion.live.log import parse_position
from clarion.models import SenderKey
from clarion.types import UserId

router = APIRouter(tags=["me"])
_bearer = HTTPBearer(auto_error=False, description="A user token (POST /v1/users/{id}/tokens).")


async def me(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserId:
    """The person whose user token this request carries."""
    svc: ApiServices = request.app.state.services
    if credentials is None:
        raise UnauthenticatedError("send a user token as 'Authorization: Bearer <token>'")
    return await svc.user_of(credentials.credentials)


Me = Annotated[UserId, Depends(me)]
_REFUSED: dict[int | str, dict[str, object]] = {400: {"model": ErrorOut}, 409: {"model": ErrorOut}}


def _as_key(user: UserId) -> SenderKey:
    """Who changes a person's settings from their own device, in the audit trail."""
    return SenderKey(key_id="user token", sender=f"user {user}")


@router.post(
    "/v1/users/{user_id}/tokens",
    response_model=TokenOut,
    responses={400: {"model": ErrorOut}},
    summary="Mint a short-lived user token for a person's devices (a sender key)",
)
async def mint_token(user_id: str, body: TokenIn, _: Caller, svc: Services) -> TokenOut:
    uid = user_id_of(user_id)
    now = svc.runtime.clock.now()
    token = tokens.mint(uid, await svc.token_keys(), now, ttl_s=body.ttl_seconds)
    return TokenOut(token=token, expires_at=iso(now + body.ttl_seconds))


@router.post(
    "/v1/me/stream-tickets",
    response_model=TicketOut,
    summary="A single-use ticket (30 s) for EventSource, which cannot send headers",
)
async def stream_ticket(user: Me, svc: Services) -> TicketOut:
    ticket, digest = tokens.new_ticket()
    expires = svc.runtime.clock.now() + tokens.TICKET_LIFETIME_S
    await svc.runtime.stores.tickets.issue(digest, user, expires)
    return TicketOut(ticket=ticket, expires_at=iso(expires))


@router.get("/v1/me/inbox", response_model=InboxOut, summary="My inbox, newest first")
async def my_inbox(
    user: Me,
    svc: Services,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=24)] = None,
) -> InboxOut:
    position = await svc.position(user)
    found = await inbox_view.page(svc, user, limit, cursor)
    found.position = position
    return found


@router.post("/v1/me/inbox/read", response_model=ReadOut, summary="Mark my entries read")
async def my_read(body: ReadIn, user: Me, svc: Services) -> ReadOut:
    return await inbox_view.mark_read(svc, user, body)


@router.get("/v1/me/preferences", response_model=PreferencesOut)
async def my_preferences(user: Me, svc: Services) -> PreferencesOut:
    return await preferences.get_preferences(user, _as_key(user), svc)


@router.put(
    "/v1/me/preferences",
    response_model=PreferencesOut,
    responses={400: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def put_my_preferences(body: PreferencesIn, user: Me, svc: Services) -> PreferencesOut:
    return await preferences.put_preferences(user, body, _as_key(user), svc)


@router.patch(
    "/v1/me/preferences",
    response_model=PreferencesOut,
    responses=_REFUSED,
    openapi_extra=preferences.PATCH_BODY,
)
async def patch_my_preferences(request: Request, user: Me, svc: Services) -> PreferencesOut:
    return await preferences.patch_preferences(user, request, _as_key(user), svc)


@router.get("/v1/me/devices", response_model=DeviceList)
async def my_devices(user: Me, svc: Services) -> DeviceList:
    return await devices.list_devices(user, _as_key(user), svc)


@router.post(
    "/v1/me/devices",
    status_code=201,
    response_model=DeviceOut,
    responses={400: {"model": ErrorOut}},
)
async def register_my_device(body: DeviceIn, user: Me, svc: Services) -> DeviceOut:
    return await devices.register(user, body, _as_key(user), svc)


@router.delete("/v1/me/devices/{device_id}", status_code=204, responses={404: {"model": ErrorOut}})
async def remove_my_device(device_id: str, user: Me, svc: Services) -> None:
    await devices.remove(user, device_id, _as_key(user), svc)


@router.get("/v1/me/state", response_model=StateOut, summary="My state: load it on start")
async def my_state(user: Me, svc: Services) -> StateOut:
    position = await svc.position(user)
    stored = await svc.runtime.stores.states.snapshot(user)
    return StateOut(
        position=position,
        items=[
            StateItemOut(key=s.key, value=s.value, version=s.version, updated_at=iso(s.updated_at))
            for s in stored
        ],
    )


@router.post("/v1/me/acks", status_code=204, responses={400: {"model": ErrorOut}})
async def acknowledge(body: AckIn, user: Me, svc: Services) -> None:
    """A device has everything up to ``position`` (critical state waits for this)."""
    position = parse_position(body.position)
    if position is None:
        raise InputError.single("position", "the id of a stream message, as epoch:position")
    await svc.runtime.stores.states.ack(user, body.device_id, *position, svc.runtime.clock.now())
