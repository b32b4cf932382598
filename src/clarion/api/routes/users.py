"""Users: profiles, the inbox and the delivery trail (preferences: ``preferences.py``).

These endpoints act for end users; until per-user tokens exist they take an admin key (the
product's backend calls them on its users' behalf).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from clarion.api import inbox_view
from clarion.api.deps import Admin, Services
from clarion.api.format import iso
from clarion.api.schemas import (
    DeliveryList,
    DeliveryOut,
    ErrorOut,
    InboxOut,
    ReadIn,
    ReadOut,
    UserIn,
    UserOut,
)
from clarion.errors import InputError, NotFoundError
from clarion.stores.records import UserProfile
from clarion.types import EventId, UserId
from clarion.validation import check_user_id, is_time_zone

router = APIRouter(prefix="/v1/users", tags=["users"])


def user_id_of(user_id: str) -> UserId:
    return UserId(check_user_id("user_id", user_id))


@router.put("/{user_id}", response_model=UserOut, summary="Create or replace a user's profile")
async def put_user(user_id: str, body: UserIn, _: Admin, svc: Services) -> UserOut:
    if body.timezone is not None:
        _check_zone(body.timezone)
    profile = UserProfile(
        user_id_of(user_id),
        body.email,
        body.phone,
        body.timezone,
        body.locale,
        svc.runtime.clock.now(),
        email_verified=body.email_verified and body.email is not None,
        phone_verified=body.phone_verified and body.phone is not None,
        attributes=dict(body.attributes),
    )
    await svc.runtime.stores.users.put(profile)
    stored = await svc.runtime.stores.users.get(profile.user_id)
    assert stored is not None
    return _user_out(stored)


@router.get("/{user_id}", response_model=UserOut, responses={404: {"model": ErrorOut}})
async def get_user(user_id: str, _: Admin, svc: Services) -> UserOut:
    profile = await svc.runtime.stores.users.get(user_id_of(user_id))
    if profile is None:
        raise NotFoundError(f"no user {user_id!r}")
    return _user_out(profile)


def _check_zone(name: str) -> None:
    if not is_time_zone(name):
        raise InputError.single(
            "timezone", f"{name!r} is not an IANA time zone (e.g. America/New_York)"
        )


def _user_out(p: UserProfile) -> UserOut:
    return UserOut(
        user_id=p.user_id,
        email=p.email,
        phone=p.phone,
        timezone=p.timezone,
        locale=p.locale,
        email_verified=p.email_verified,
        phone_verified=p.phone_verified,
        email_bounced=p.email_bounced_at is not None,
        attributes=p.attributes,
    )


# ── inbox ────────────────────────────────────────────────────────────────────────────


@router.get("/{user_id}/inbox", response_model=InboxOut, summary="The in-app inbox, newest first")
async def inbox(
    user_id: str,
    _: Admin,
    svc: Services,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=24)] = None,
) -> InboxOut:
    return await inbox_view.page(svc, user_id_of(user_id), limit, cursor)


@router.post("/{user_id}/inbox/read", response_model=ReadOut, summary="Mark entries read")
async def mark_read(user_id: str, body: ReadIn, _: Admin, svc: Services) -> ReadOut:
    return await inbox_view.mark_read(svc, user_id_of(user_id), body)


# ── why didn't I get it? ─────────────────────────────────────────────────────────────


@router.get("/{user_id}/deliveries", response_model=DeliveryList, summary="The delivery trail")
async def deliveries(
    user_id: str,
    _: Admin,
    svc: Services,
    event_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryList:
    records = await svc.runtime.stores.deliveries.for_user(
        user_id_of(user_id), event_id=None if event_id is None else EventId(event_id), limit=limit
    )
    return DeliveryList(
        items=[
            DeliveryOut(
                event_id=r.event_id,
                channel=r.channel,
                attempt=r.attempt,
                outcome=r.outcome,
                reason=r.reason,
                at=iso(r.at),
                trace_id=r.trace_id,
            )
            for r in records
        ]
    )
