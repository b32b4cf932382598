"""``clarion kill``: stop a type, channel, sender or campaign everywhere; list; lift."""

from __future__ import annotations

import getpass
import json
import secrets
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clarion.cli.common import Commands, DbOption, JsonOption, settings_for, with_runtime
from clarion.errors import InputError, NotFoundError
from clarion.models import Channel
from clarion.policy.killswitch import KillKind, KillSwitch
from clarion.runtime import Runtime
from clarion.validation import check_name

app = typer.Typer(
    cls=Commands,
    help="Kill switches: stop delivery of a type, channel, sender or campaign within a second.",
    no_args_is_help=True,
)
_out = Console()


def _actor() -> str:
    return f"cli ({getpass.getuser()})"


@app.command("create")
def create(
    type_name: Annotated[str | None, typer.Option("--type", help="A notification type.")] = None,
    channel: Annotated[Channel | None, typer.Option(help="A channel.")] = None,
    sender: Annotated[str | None, typer.Option(help="A sending service.")] = None,
    campaign: Annotated[str | None, typer.Option(help="A campaign id.")] = None,
    reason: Annotated[str, typer.Option(help="Why; shown to other operators.")] = "",
    db: DbOption = None,
) -> None:
    """Stop delivery now, including work already queued. Give exactly one target."""
    given = {
        KillKind.TYPE: type_name,
        KillKind.CHANNEL: channel.value if channel else None,
        KillKind.SENDER: sender,
        KillKind.CAMPAIGN: campaign,
    }
    chosen = [(kind, value) for kind, value in given.items() if value]
    if len(chosen) != 1:
        raise InputError.single(
            "target", "give exactly one of --type, --channel, --sender, --campaign"
        )
    kind, value = chosen[0]
    assert value is not None
    if kind is not KillKind.CHANNEL:
        check_name(kind.value, value)

    async def make(rt: Runtime) -> KillSwitch:
        switch = KillSwitch(
            f"ks_{secrets.token_hex(6)}", kind, value, reason, rt.clock.now(), _actor()
        )
        await rt.stores.kill_switches.create(switch)
        return switch

    switch = with_runtime(settings_for(db), make)
    _out.print(f"Kill switch {switch.id}: {kind.value} {value!r} is stopped.")


@app.command("list")
def list_switches(
    all_: Annotated[bool, typer.Option("--all", help="Include lifted switches.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Active kill switches (and lifted ones with --all)."""
    switches: list[KillSwitch] = with_runtime(
        settings_for(db), lambda rt: rt.stores.kill_switches.list(include_lifted=all_)
    )
    if as_json:
        typer.echo(json.dumps([asdict(s) for s in switches], indent=2, default=str))
        return
    table = Table("id", "stops", "reason", "by", "state")
    for s in switches:
        state = "active" if s.lifted_at is None else f"lifted by {s.lifted_by}"
        table.add_row(s.id, f"{s.kind.value} {s.value}", s.reason, s.created_by, state)
    _out.print(table)


@app.command("lift")
def lift(switch_id: str, db: DbOption = None) -> None:
    """Lift a kill switch; delivery resumes for new work within a second."""
    lifted = with_runtime(
        settings_for(db),
        lambda rt: rt.stores.kill_switches.lift(switch_id, rt.clock.now(), _actor()),
    )
    if lifted is None:
        raise NotFoundError(f"no active kill switch {switch_id!r} (see: clarion kill list)")
    _out.print(f"Lifted {switch_id}.")
