"""``clarion devices``: device-registry maintenance."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from clarion.cli.common import Commands, DbOption, settings_for, with_runtime

app = typer.Typer(cls=Commands, help="Device registry maintenance.", no_args_is_help=True)
_out = Console()
DAY_S = 86_400


@app.command("prune")
def prune(
    stale_days: Annotated[
        int, typer.Option(min=1, help="Unseen this long: stale (still used).")
    ] = 30,
    expire_days: Annotated[
        int, typer.Option(min=1, help="Unseen this long: expired (not used).")
    ] = 90,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Mark devices unseen for a month stale and those unseen for three months expired.

    Run it daily (cron). A stale device still gets pushes; an expired one does not until
    the app registers it again."""
    if expire_days <= stale_days:
        raise typer.BadParameter("must be more than --stale-days", param_hint="--expire-days")
    stale, expired = with_runtime(
        settings_for(db),
        lambda rt: rt.stores.devices.prune(
            rt.clock.now(), stale_after_s=stale_days * DAY_S, expire_after_s=expire_days * DAY_S
        ),
    )
    if as_json:
        typer.echo(json.dumps({"expired": expired, "stale": stale}))
        return
    _out.print(f"{expired:,} devices expired, {stale:,} marked stale.")
