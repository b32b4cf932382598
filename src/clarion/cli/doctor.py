"""``clarion doctor``: is this configuration ready to run, and if not, what to change."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console
from rich.table import Table

from clarion.cli.common import BrokerOption, DbOption, JsonOption, StoreOption, settings_for
from clarion.doctor import diagnose

_out = Console()


def doctor(
    db: DbOption = None,
    broker: BrokerOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the configuration (the same settings and environment `clarion serve` would
    use): backends reachable, a provider for every channel the types list, CA files
    readable, email links pointing somewhere people can reach. Exits 1 if anything needs
    fixing, and says how."""
    settings = settings_for(db, broker=broker, store=store)
    findings = asyncio.run(diagnose(settings))
    problems = [f for f in findings if not f.ok]
    if as_json:
        doc = {"ok": not problems, "findings": [f.to_json() for f in findings]}
        typer.echo(json.dumps(doc, indent=2))
    else:
        table = Table("", "check", "found", "to fix", title="clarion doctor")
        for f in findings:
            mark = "[green]ok[/green]" if f.ok else "[red]fix[/red]"
            table.add_row(mark, f.check, f.detail, f.fix)
        _out.print(table)
        _out.print(
            f"{len(problems)} thing(s) to fix." if problems else "Everything checked is in order."
        )
    if problems:
        raise typer.Exit(1)
