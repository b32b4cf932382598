"""Stream entries → the messages a device gets: ``{"id": "epoch:pos", "type", "data"}``.

The log keeps entries small (an inbox entry is its event's seq); the words are made when
they are sent, as ``GET /v1/me/inbox`` makes them: in the reader's locale, from the
event's template, an aggregate entry with its count and names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from clarion.api import inbox_view
from clarion.live.log import Entry, Kind
from clarion.types import Seq, UserId

if TYPE_CHECKING:
    from clarion.api.services import ApiServices


class Renderer:
    def __init__(self, svc: ApiServices) -> None:
        self._svc = svc

    async def __call__(self, user: UserId, entries: Sequence[Entry]) -> list[dict[str, Any]]:
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
        messages = []
        for entry in entries:
            data: dict[str, Any] = dict(entry.body)
            if entry.kind is Kind.INBOX:
                data = {"item": items.get(Seq(entry.body["seq"])), "unread_count": unread}
            elif entry.kind is Kind.LIVE:
                event = contents.get(Seq(entry.body["seq"]))
                data = {} if event is None else _notification(event)
            if entry.critical:
                data["critical"] = True  # acknowledge it: WebSocket "ack", or POST /v1/me/acks
            messages.append({"id": entry.position, "type": entry.kind.value, "data": data})
        return messages


def _notification(event: Any) -> dict[str, Any]:
    return {
        "type": event.type,
        "actor": event.actor,
        "object": event.object,
        "title": event.title,
        "body": event.body,
        "payload": event.payload,
        "collapse_key": event.collapse_key,
    }
