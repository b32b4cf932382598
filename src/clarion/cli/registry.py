"""``clarion types``: the notification type registry from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clarion.cli.common import Commands, DbOption, JsonOption, settings_for, with_runtime
from clarion.errors import InputError
from clarion.models import Channel, Priority, Routing, TypeSpec
from clarion.validation import check_name

app = typer.Typer(cls=Commands, help="Register and list notification types.", no_args_is_help=True)
_out = Console()


@app.command("put")
def put(
    name: Annotated[str, typer.Argument(help="Type name, e.g. video_uploaded.")],
    priority: Annotated[Priority, typer.Option(help="P0 transactional, P1 social, P2 bulk.")],
    channels: Annotated[str, typer.Option(help="Comma-separated default channels.")] = "in_app",
    ttl: Annotated[int, typer.Option(help="Seconds before an undelivered event is dropped.")] = (
        86_400
    ),
    mandatory: Annotated[bool, typer.Option("--mandatory", help="Users cannot disable it.")] = (
        False
    ),
    description: Annotated[str, typer.Option(help="Shown as the default title.")] = "",
    routing: Annotated[
        Routing,
        typer.Option(help="first: one channel, the rest as fallbacks; all: dual-send."),
    ] = Routing.FIRST,
    db: DbOption = None,
) -> None:
    """Register a type, or change one."""
    check_name("type", name)
    try:
        chosen = tuple(dict.fromkeys(Channel(c.strip()) for c in channels.split(",") if c.strip()))
    except ValueError:
        valid = ", ".join(c.value for c in Channel)
        raise InputError.single("channels", f"choose from: {valid}") from None
    if not chosen or not 0 < ttl <= 30 * 86_400:
        raise InputError.single("channels/ttl", "need at least one channel and 0 < ttl <= 30 days")
    spec = TypeSpec(name, priority, chosen, ttl, mandatory, description, routing=routing)
    with_runtime(settings_for(db), lambda rt: rt.stores.types.put(spec, rt.clock.now()))
    _out.print(f"Type {name}: {priority.value}, channels {', '.join(chosen)}, ttl {ttl}s.")


@app.command("list")
def list_types(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List registered types."""
    specs: list[TypeSpec] = with_runtime(settings_for(db), lambda rt: rt.stores.types.list())
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in specs], indent=2))
        return
    if not specs:
        _out.print("No types registered yet: clarion types put --help shows how.")
        return
    table = Table("type", "priority", "channels", "routing", "retries", "ttl (s)", "mandatory")
    for s in specs:
        table.add_row(
            s.name,
            s.priority.value,
            ", ".join(s.channels),
            s.routing.value,
            f"{s.budget.retries} within {s.budget.within_s:g}s",
            str(s.ttl_seconds),
            "yes" if s.mandatory else "",
        )
    _out.print(table)
