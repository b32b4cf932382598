"""Stream entries → the messages a device gets: ``{"id": "epoch:pos", "type", "data"}``.

The log keeps entries small (an inbox entry is its event's seq); the words are made when
they are sent, as ``GET /v1/me/inbox`` makes them: in the reader's locale, from the
event's template, an aggregate entry with its count and names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from clarion.api import inbox_view
from clarion.api.inbox_view import rendered_text, template_params
from clarion.live.log import Entry, Kind
from clarion.models import Channel, EventContent
from clarion.templates import wording
from clarion.types import Seq, UserId

if TYPE_CHECKING:
    from clarion.api.services import ApiServices


class Renderer:
    def __init__(self, svc: ApiServices) -> None:
        self._svc = svc

    async def __call__(self, user: UserId, entries: Sequence[Entry]) -> list[dict[str, Any] | None]:
        """One message per entry, or None for a live notification a newer one of the same
        ``collapse_key`` among ``entries`` replaces."""
        stores = self._svc.runtime.stores
        inbox_seqs = [Seq(e.body["seq"]) for e in entries if e.kind is Kind.INBOX]
        items: dict[Seq, dict[str, Any]] = {}
        unread = None
        if inbox_seqs:
            found = await stores.inbox.items(user, inbox_seqs)
            shown = await inbox_view.items_out(self._svc, user, found)
            items = {i.seq: out.model_dump() for i, out in zip(found, shown, strict=True)}
            unread = (await stores.inbox.page(user, before=None, limit=1)).unread_count
        live_seqs = [Seq(e.body["seq"]) for e in entries if e.kind is Kind.LIVE]
        contents = await stores.events.contents(live_seqs) if live_seqs else {}
        notifications = await self._notifications(user, contents) if contents else {}
        messages: list[dict[str, Any] | None] = []
        for entry in entries:
            data: dict[str, Any] = entry.body  # not changed here: sent as it is
            if entry.kind is Kind.INBOX:
                item = items.get(Seq(entry.body["seq"]))
                if item is None:  # replaced since (latest wins) or gone: nothing to show
                    messages.append(None)
                    continue
                data = {"item": item, "unread_count": unread}
            elif entry.kind is Kind.LIVE:
                data = dict(notifications.get(Seq(entry.body["seq"]), {}))
            if entry.critical:  # acknowledge it: WebSocket "ack", or POST /v1/me/acks
                data = {**data, "critical": True}
            messages.append({"id": entry.position, "type": entry.kind.value, "data": data})
        return _latest_of_each_key(messages) if live_seqs else messages

    async def _notifications(
        self, user: UserId, contents: dict[Seq, EventContent]
    ) -> dict[Seq, dict[str, Any]]:
        """Live notifications as the device shows them: the template's ``live`` variant
        (else its ``in_app`` one) in the person's locale, else the event's own words."""
        locale = None
        if any(e.template for e in contents.values()):
            profile = await self._svc.runtime.stores.users.get(user)
            locale = profile.locale if profile else None
        out = {}
        for seq, event in contents.items():
            title, body = event.title, event.body
            if event.template is not None and event.template_version is not None:
                doc = await self._svc.template_doc(event.template, event.template_version)
                if doc is not None:
                    params = template_params(event, user, wording.single(event.actor))
                    variants = (Channel.LIVE, Channel.IN_APP)
                    title, body = rendered_text(doc, variants, locale, params, title, body)
            out[seq] = {
                "type": event.type,
                "actor": event.actor,
                "object": event.object,
                "title": title,
                "body": body,
                "payload": event.payload,
                "collapse_key": event.collapse_key,
            }
        return out


def _latest_of_each_key(
    messages: list[dict[str, Any] | None],
) -> list[dict[str, Any] | None]:
    """Of live notifications sharing a ``collapse_key`` in one go (a replay after a
    disconnect), only the newest is sent: latest wins, as it does in the inbox."""
    last: dict[str, int] = {}
    for index, message in enumerate(messages):
        key = message and message["type"] == Kind.LIVE and message["data"].get("collapse_key")
        if key:
            last[key] = index
    if not last:
        return messages
    return [
        None if m and m["type"] == Kind.LIVE and last.get(m["data"]["collapse_key"], i) != i else m
        for i, m in enumerate(messages)
    ]
