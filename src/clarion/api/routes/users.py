"""Users: profiles, the inbox and the delivery trail (preferences: ``preferences.py``).

These endpoints act for end users; until per-user tokens exist they take an admin key (the
product's backend calls them on its users' behalf).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from clarion.api.deps import Admin, Services
from clarion.api.format import iso
from clarion.api.schemas import (
    DeliveryList,
    DeliveryOut,
    ErrorOut,
    InboxAggregateOut,
    InboxItemOut,
    InboxOut,
    ReadIn,
    ReadOut,
    UserIn,
    UserOut,
)
from clarion.api.services import ApiServices
from clarion.errors import InputError, NotFoundError
from clarion.models import Channel
from clarion.stores.records import InboxItem, UserProfile
from clarion.templates import wording
from clarion.templates.render import RenderError, render
from clarion.types import EventId, Seq, UserId
from clarion.validation import check_user_id, is_time_zone

router = APIRouter(prefix="/v1/users", tags=["users"])

_ITEM_PREFIX = "ntf_"


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
    before = None
    if cursor is not None:
        if not cursor.isdigit():
            raise InputError.single("cursor", "use the next_cursor of a previous page")
        before = Seq(int(cursor))
    uid = user_id_of(user_id)
    page = await svc.runtime.stores.inbox.page(uid, before=before, limit=limit)
    locale = None
    if any(i.template for i in page.items):
        profile = await svc.runtime.stores.users.get(uid)
        locale = profile.locale if profile else None
    items = []
    for i in page.items:
        title, body = await _in_app_text(svc, i, uid, locale)
        items.append(
            InboxItemOut(
                id=f"{_ITEM_PREFIX}{i.seq}",
                event_id=i.event_id,
                type=i.type,
                actor=i.actor,
                object=i.object,
                title=title,
                body=body,
                created_at=iso(i.created_at),
                read=i.read,
                aggregate=None
                if i.aggregate is None
                else InboxAggregateOut(
                    count=i.aggregate.count,
                    actors=list(i.aggregate.actors),
                    last_at=iso(i.aggregate.last_at),
                ),
            )
        )
    return InboxOut(
        items=items,
        next_cursor=None if page.next_before is None else str(page.next_before),
        unread_count=page.unread_count,
    )


async def _in_app_text(
    svc: ApiServices, item: InboxItem, user: UserId, locale: str | None
) -> tuple[str, str]:
    """The in-app variant of the event's template, in the reader's locale (rendered when
    read, cached per locale), or the event's own title and body. An aggregate entry's
    template sees its count and names (``templates.wording``); without one, its body
    names them ("Bob, Carol, Dan and 4,996 others")."""
    aggregate = item.aggregate if item.aggregate is not None and item.aggregate.count > 1 else None
    body = item.body if aggregate is None else wording.entry_body(aggregate)
    if item.template is None or item.template_version is None:
        return item.title, body
    doc = await svc.template_doc(item.template, item.template_version)
    if doc is None:
        return item.title, body
    params = {
        **item.payload,
        "payload": item.payload,
        "actor": item.actor,
        "object": item.object,
        "type": item.type,
        "user": {"id": user},
        **(wording.single(item.actor) if aggregate is None else wording.of_entry(aggregate)),
    }
    try:
        fields = render(doc, Channel.IN_APP, locale, params)
    except RenderError:
        return item.title, body
    return fields.get("title") or item.title, fields.get("body") or body


@router.post("/{user_id}/inbox/read", response_model=ReadOut, summary="Mark entries read")
async def mark_read(user_id: str, body: ReadIn, _: Admin, svc: Services) -> ReadOut:
    uid = user_id_of(user_id)
    if (body.ids is None) == (body.all is None):
        raise InputError.single("ids", 'give either "ids": [...] or "all": true')
    seqs = None if body.ids is None else [_seq_of(i, n) for n, i in enumerate(body.ids)]
    inbox_store = svc.runtime.stores.inbox
    updated = await inbox_store.mark_read(uid, seqs, svc.runtime.clock.now())
    page = await inbox_store.page(uid, before=None, limit=1)
    return ReadOut(updated=updated, unread_count=page.unread_count)


def _seq_of(item_id: str, index: int) -> Seq:
    digits = item_id.removeprefix(_ITEM_PREFIX)
    if not item_id.startswith(_ITEM_PREFIX) or not digits.isdigit():
        raise InputError.single(f"ids[{index}]", f"{item_id!r} is not an inbox item id")
    return Seq(int(digits))


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
            )
            for r in records
        ]
    )
