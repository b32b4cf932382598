"""The inbox as people read it — one page, an item's words in their locale, marking
read — for ``/v1/users/{id}/inbox`` (a sender key), ``/v1/me/inbox`` (the person's own
token) and the live stream's inbox messages alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from clarion.api.format import iso
from clarion.api.schemas import InboxAggregateOut, InboxItemOut, InboxOut, ReadIn, ReadOut
from clarion.errors import InputError
from clarion.live.log import Kind, Post
from clarion.models import Channel, EventContent
from clarion.stores.records import InboxItem
from clarion.templates import wording
from clarion.templates.render import RenderError, render
from clarion.types import Seq, UserId

if TYPE_CHECKING:
    from clarion.api.services import ApiServices

ITEM_PREFIX = "ntf_"


async def page(svc: ApiServices, user: UserId, limit: int, cursor: str | None) -> InboxOut:
    before = None
    if cursor is not None:
        if not cursor.isdigit():
            raise InputError.single("cursor", "use the next_cursor of a previous page")
        before = Seq(int(cursor))
    found = await svc.runtime.stores.inbox.page(user, before=before, limit=limit)
    return InboxOut(
        items=await items_out(svc, user, found.items),
        next_cursor=None if found.next_before is None else str(found.next_before),
        unread_count=found.unread_count,
    )


async def items_out(
    svc: ApiServices, user: UserId, items: Sequence[InboxItem]
) -> list[InboxItemOut]:
    locale = None
    if any(i.template for i in items):
        profile = await svc.runtime.stores.users.get(user)
        locale = profile.locale if profile else None
    out = []
    for i in items:
        title, body = await in_app_text(svc, i, user, locale)
        out.append(
            InboxItemOut(
                id=f"{ITEM_PREFIX}{i.seq}",
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
    return out


async def in_app_text(
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
    words = wording.single(item.actor) if aggregate is None else wording.of_entry(aggregate)
    params = template_params(item, user, words)
    return rendered_text(doc, (Channel.IN_APP,), locale, params, item.title, body)


def template_params(
    event: InboxItem | EventContent, user: UserId, words: dict[str, Any]
) -> dict[str, Any]:
    """What a template sees: the payload's fields, the event's, the reader's id and the
    words naming who did it (``templates.wording``)."""
    return {
        **event.payload,
        "payload": event.payload,
        "actor": event.actor,
        "object": event.object,
        "type": event.type,
        "user": {"id": user},
        **words,
    }


def rendered_text(
    doc: dict[str, Any],
    variants: Sequence[Channel],
    locale: str | None,
    params: dict[str, Any],
    title: str,
    body: str,
) -> tuple[str, str]:
    """Title and body from the first of ``variants`` the template has, else the event's."""
    for variant in variants:
        try:
            fields = render(doc, variant, locale, params)
        except RenderError:
            return title, body
        if fields:
            return fields.get("title") or title, fields.get("body") or body
    return title, body


async def mark_read(svc: ApiServices, user: UserId, body: ReadIn) -> ReadOut:
    """Mark entries read (or all), and tell the person's other devices."""
    if (body.ids is None) == (body.all is None):
        raise InputError.single("ids", 'give either "ids": [...] or "all": true')
    seqs = None if body.ids is None else [seq_of(i, n) for n, i in enumerate(body.ids)]
    store = svc.runtime.stores.inbox
    updated = await store.mark_read(user, seqs, svc.runtime.clock.now())
    unread = (await store.page(user, before=None, limit=1)).unread_count
    if updated:
        ids = None if body.ids is None else list(body.ids)
        news = {"ids": ids, "read": True, "unread_count": unread}
        await svc.publish([Post(user, Kind.READ, news)])
    return ReadOut(updated=updated, unread_count=unread)


def seq_of(item_id: str, index: int) -> Seq:
    digits = item_id.removeprefix(ITEM_PREFIX)
    if not item_id.startswith(ITEM_PREFIX) or not digits.isdigit():
        raise InputError.single(f"ids[{index}]", f"{item_id!r} is not an inbox item id")
    return Seq(int(digits))
