"""Options and helpers shared by the commands."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from typer.core import TyperGroup

from clarion import logs
from clarion.config import Settings
from clarion.errors import InputError
from clarion.runtime import Runtime, open_runtime

if TYPE_CHECKING:
    from typer import _click as click  # Typer's own copy of click, whose types it uses

T = TypeVar("T")


class Commands(TyperGroup):
    """A command group whose command list gives each command's first paragraph on one line
    (Typer's rich help keeps the docstring's line breaks there, which breaks the table)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None and command.short_help is None and command.help:
            first = inspect.cleandoc(command.help).partition("\n\n")[0]
            command.short_help = " ".join(first.split())
        return command


DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar="CLARION_DB",
        help="The SQLite database file (created if missing). \\[default: ./clarion.db]",
        show_default=False,
    ),
]
BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        envvar="CLARION_BROKER",
        help="Keep the queues in Redis Streams (redis://host:port/n); the stores stay in the"
        " SQLite database. \\[default: the queues are in the SQLite database too]",
        show_default=False,
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="CLARION_STORE",
        help="Keep the stores in PostgreSQL (postgresql://user@host:port/db), so workers and"
        " API processes on many machines share them; needs --broker too."
        " \\[default: in the SQLite database]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def settings_for(db: Path | None, **changes: object) -> Settings:
    return Settings.from_env().replace(db=db, **changes)


def with_runtime(settings: Settings, fn: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open a runtime (durable commits), run ``fn`` on it, close it."""

    async def _run() -> T:
        runtime = open_runtime(settings, durable_commits=True)
        try:
            await runtime.check()
            return await fn(runtime)
        finally:
            await runtime.close()

    return asyncio.run(_run())


LogLevelOption = Annotated[
    str | None,
    typer.Option(
        help="debug, info, warning or error. \\[default: CLARION_LOG_LEVEL, else info]",
        show_default=False,
    ),
]
LogFormatOption = Annotated[
    str | None,
    typer.Option(
        help="json (one object per line), console, or auto: console on a terminal, json"
        " otherwise. \\[default: CLARION_LOG_FORMAT, else auto]",
        show_default=False,
    ),
]


def configure_logging(level: str | None, form: str | None = None) -> None:
    """Log as asked, and leave the choice in the environment for the processes this one
    starts (workers, API processes)."""
    chosen_level = (level or os.environ.get(logs.LEVEL_ENV) or "info").lower()
    chosen_form = (form or os.environ.get(logs.FORMAT_ENV) or "auto").lower()
    if chosen_level not in logs.LEVELS:
        raise InputError.single("log-level", f"choose from {', '.join(logs.LEVELS)}")
    if chosen_form not in logs.FORMATS:
        raise InputError.single("log-format", f"choose from {', '.join(logs.FORMATS)}")
    os.environ[logs.LEVEL_ENV], os.environ[logs.FORMAT_ENV] = chosen_level, chosen_form
    logs.from_env()
