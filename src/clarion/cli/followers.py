"""``clarion followers``: bulk import (or removal) of a creator's followers from a file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from clarion.cli.common import Commands, DbOption, settings_for
from clarion.config import Settings
from clarion.idlists import IdListFormat, IdListReader
from clarion.runtime import open_runtime
from clarion.types import UserId
from clarion.validation import check_user_id

app = typer.Typer(cls=Commands, help="Manage the follower graph.", no_args_is_help=True)
_out = Console()
_READ = 1 << 20
_APPLY = 20_000


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=_out,
        transient=False,
    )


@app.command("import")
def import_followers(
    creator: Annotated[str, typer.Argument(help="The creator whose followers these are.")],
    file: Annotated[
        Path,
        typer.Argument(
            help="One id per line; .csv (first column) and .ndjson/.jsonl are understood.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    remove: Annotated[bool, typer.Option("--remove", help="Remove these followers instead.")] = (
        False
    ),
    db: DbOption = None,
) -> None:
    """Add (or remove) followers from a file. The whole file is checked first: a bad line
    stops the import before anything is written."""
    creator_id = UserId(check_user_id("creator", creator))
    reader = IdListReader(IdListFormat.from_filename(file.name))
    try:
        _check(file, reader)
        changed, total = asyncio.run(_apply(settings_for(db), creator_id, reader, remove))
    finally:
        reader.close()
    verb = "removed" if remove else "added"
    _out.print(f"{changed:,} followers {verb}; {creator_id} now has {total:,} followers.")


def _check(file: Path, reader: IdListReader) -> None:
    size = file.stat().st_size
    with _progress() as progress, file.open("rb") as handle:
        task = progress.add_task("checking", total=size)
        while chunk := handle.read(_READ):
            reader.feed(chunk)
            progress.advance(task, len(chunk))
        reader.finish()


async def _apply(
    settings: Settings, creator: UserId, reader: IdListReader, remove: bool
) -> tuple[int, int]:
    runtime = open_runtime(settings, durable_commits=True)
    store = runtime.stores.followers
    changed = 0
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} ids"),
            TimeRemainingColumn(),
            console=_out,
        ) as progress:
            task = progress.add_task("removing" if remove else "importing", total=reader.count)
            for chunk in reader.chunks(_APPLY):
                apply = store.remove if remove else store.add
                changed += await apply(creator, chunk)
                progress.advance(task, len(chunk))
        return changed, await store.count(creator)
    finally:
        await runtime.close()
