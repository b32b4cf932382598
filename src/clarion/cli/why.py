"""``clarion why USER``: "why didn't they get it?", answered in sentences."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from clarion.cli.common import (
    BrokerOption,
    DbOption,
    JsonOption,
    StoreOption,
    settings_for,
    with_runtime,
)
from clarion.errors import NotFoundError
from clarion.runtime import Runtime
from clarion.trail import About, explain
from clarion.types import EventId, UserId

_out = Console()


def why(
    user: Annotated[str, typer.Argument(help="The person's user id.")],
    event: Annotated[
        str | None, typer.Option(help="Only this event (evt_…); default: their latest.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Events to explain.")] = 5,
    db: DbOption = None,
    broker: BrokerOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tell what happened to a person's notifications, one sentence per event, in their
    time zone: what each channel did and why anything was not sent."""
    settings = settings_for(db, broker=broker, store=store)
    found = with_runtime(settings, lambda rt: _explain(rt, UserId(user), event, limit))
    if not found:
        what = f"event {event}" if event else "any event"
        raise NotFoundError(f"nothing recorded for {user!r} about {what}")
    if as_json:
        typer.echo(json.dumps([{"event_id": e, "sentence": s} for e, s in found], indent=2))
        return
    for _, sentence in found:
        _out.print(sentence, highlight=False, soft_wrap=True)


async def _explain(
    runtime: Runtime, user: UserId, event: str | None, limit: int
) -> list[tuple[str, str]]:
    stores = runtime.stores
    wanted = None if event is None else EventId(event)
    rows = await stores.deliveries.for_user(user, event_id=wanted, limit=500)
    order = list(dict.fromkeys(r.event_id for r in rows))[:limit]
    zone = (await stores.users.timezones([user])).get(user)
    told: list[tuple[str, str]] = []
    for event_id in order:
        status = await stores.events.status(event_id)
        if status is None:
            continue
        about = About(event_id, status.type, status.actor, status.created_at)
        told.append((event_id, explain(about, [r for r in rows if r.event_id == event_id], zone)))
    return told
