"""What every benchmark command shares: the ``bench`` group, its progress bars and the
options naming other backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from clarion.cli.common import Commands
from clarion.errors import InputError

app = typer.Typer(
    cls=Commands,
    help="Benchmarks: fan-out, ingest, evaluation, aggregation, campaigns, push and email"
    " throughput; P0 isolation; live streams.",
    no_args_is_help=True,
)
err = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def advance(bar: Progress) -> Callable[[str, int, int | None], None]:
    """A benchmark's ``progress`` callback: one bar per phase it reports."""
    tasks: dict[str, TaskID] = {}

    def advanced(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    return advanced


def check_backends(broker: str | None, store: str | None) -> None:
    if store is not None and broker is None:
        raise InputError.single("store", "needs --broker redis://… too: the queues go to Redis")


BrokerOption = Annotated[
    str | None,
    typer.Option(
        help="Queues in this Redis database (redis://host:port/n; it must hold no Clarion"
        " queues, and they are removed afterwards). \\[default: embedded SQLite queues]",
        show_default=False,
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        help="Stores in this PostgreSQL database (postgresql://user@host:port/db; it must"
        " hold no Clarion data, and is emptied afterwards); needs --broker. The fan-out"
        " benchmark also measures its raw COPY rate. \\[default: the embedded SQLite stores]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="End with one JSON line.")]
