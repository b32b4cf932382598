"""``clarion keys``: create, list and revoke API keys."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clarion.cli.common import Commands, DbOption, JsonOption, settings_for, with_runtime
from clarion.errors import NotFoundError
from clarion.keys import create_key
from clarion.models import SenderKey

app = typer.Typer(cls=Commands, help="Create, list and revoke API keys.", no_args_is_help=True)
_out = Console()


@app.command("create")
def create(
    sender: Annotated[str, typer.Option(help="The producing service this key belongs to.")],
    types: Annotated[
        str | None,
        typer.Option(help="Comma-separated types it may send. [default: any registered type]"),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Events per second it may send. [default: unlimited]")
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="May also manage types, users and settings.")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key. It is printed once, alone on the last line; only its hash is stored."""
    allowed = None if types is None else [t.strip() for t in types.split(",") if t.strip()]
    key, secret = with_runtime(
        settings_for(db),
        lambda rt: create_key(
            rt.stores.keys, rt.clock, sender=sender, types=allowed, rate_per_s=rate, admin=admin
        ),
    )
    if as_json:
        typer.echo(json.dumps({"key_id": key.key_id, "sender": key.sender, "key": secret}))
        return
    scope = "admin" if key.admin else f"types: {', '.join(sorted(key.types or [])) or 'any'}"
    limit = f"{key.rate_per_s:g} events/s" if key.rate_per_s else "no rate limit"
    _out.print(f"Created key [bold]{key.key_id}[/bold] for {key.sender} ({scope}; {limit}).")
    _out.print("Store it now: it is shown only this once.")
    typer.echo(secret)


@app.command("list")
def list_keys(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List keys (never their secrets)."""
    keys: list[SenderKey] = with_runtime(settings_for(db), lambda rt: rt.stores.keys.list())
    if as_json:
        typer.echo(json.dumps([_key_json(k) for k in keys], indent=2))
        return
    table = Table("key id", "sender", "types", "rate/s", "admin", "state")
    for k in keys:
        table.add_row(
            k.key_id,
            k.sender,
            ", ".join(sorted(k.types)) if k.types else "any",
            f"{k.rate_per_s:g}" if k.rate_per_s else "-",
            "yes" if k.admin else "",
            "revoked" if k.revoked_at else "active",
        )
    _out.print(table)


@app.command("revoke")
def revoke(key_id: str, db: DbOption = None) -> None:
    """Revoke a key by its id; it stops working within a few seconds everywhere."""
    done = with_runtime(settings_for(db), lambda rt: rt.stores.keys.revoke(key_id, rt.clock.now()))
    if not done:
        raise NotFoundError(f"no active key {key_id!r} (see: clarion keys list)")
    _out.print(f"Revoked {key_id}.")


def _key_json(k: SenderKey) -> dict[str, object]:
    return {
        "key_id": k.key_id,
        "sender": k.sender,
        "types": sorted(k.types) if k.types else None,
        "rate_per_s": k.rate_per_s,
        "admin": k.admin,
        "revoked": k.revoked_at is not None,
    }
