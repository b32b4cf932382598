"""The ``clarion`` command: thin wrappers that parse options and call into the runtime."""

from __future__ import annotations

import sys
from importlib.metadata import version

import typer
from rich.console import Console

from clarion.cli import (
    bench,
    campaigns,
    database,
    demo,
    devices,
    doctor,
    fakes,
    followers,
    keys,
    kill,
    operations,
    partitions,
    registry,
    serve,
    slo,
    why,
)
from clarion.cli.common import Commands
from clarion.errors import ClarionError, InputError

app = typer.Typer(
    cls=Commands,
    name="clarion",
    help="Self-hostable notification delivery: fan-out, preferences, priorities, channels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"clarion {version('clarion')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print Clarion's version (include it in bug reports) and exit.",
    ),
) -> None:
    """Self-hostable notification delivery: fan-out, preferences, priorities, channels."""


serve.register(app)
app.add_typer(database.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(followers.app, name="followers")
app.add_typer(partitions.app, name="partitions")
app.add_typer(registry.app, name="types")
app.add_typer(kill.app, name="kill")
app.add_typer(devices.app, name="devices")
app.command("queues")(operations.queues)
app.command("why")(why.why)
app.command("doctor")(doctor.doctor)
app.command("slo")(slo.slo)
app.add_typer(campaigns.campaigns, name="campaigns")
app.add_typer(campaigns.audiences, name="audiences")
app.add_typer(operations.dlq, name="dlq")
app.add_typer(operations.senders, name="senders")
fakes.register(app)
demo.register(app)
app.add_typer(bench.app, name="bench")

_err = Console(stderr=True)


def main() -> None:
    try:
        app(prog_name="clarion")
    except InputError as exc:
        for problem in exc.problems:
            _err.print(f"[red]error:[/red] {problem.field}: {problem.reason}", highlight=False)
        sys.exit(2)
    except ClarionError as exc:
        _err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
