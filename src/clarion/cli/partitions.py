"""``clarion partitions``: precompute the follower lists of big accounts for fast fan-out."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clarion.cli.common import Commands, DbOption, JsonOption, settings_for
from clarion.config import Settings
from clarion.errors import NotFoundError
from clarion.pipeline.partitions import RefreshResult, refresh_partitions
from clarion.runtime import open_runtime
from clarion.types import UserId

app = typer.Typer(
    cls=Commands,
    help="Precomputed follower partitions: a celebrity's fan-out hands out partition"
    " references instead of paging millions of followers.",
    no_args_is_help=True,
)
_out = Console()
_err = Console(stderr=True)


@app.command("refresh")
def refresh(
    creator: Annotated[
        str | None, typer.Option(help="Only this creator (whatever its follower count).")
    ] = None,
    threshold: Annotated[
        int | None,
        typer.Option(min=1, help="Creators with at least this many followers. \\[default: 100000]"),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rebuild from the follower store, not incrementally.")
    ] = False,
    every: Annotated[
        float | None,
        typer.Option(min=1, help="Keep running: refresh again every so many seconds."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Build partitions for creators over the threshold, or apply the follows and
    unfollows logged since the last run to the ones already built."""
    settings = settings_for(db, partition_threshold=threshold)
    while True:
        results = asyncio.run(_refresh_all(settings, creator, full=full, quiet=as_json))
        _show(results, as_json=as_json)
        if every is None:
            return
        try:
            time.sleep(every)
        except KeyboardInterrupt:
            return


async def _refresh_all(
    settings: Settings, creator: str | None, *, full: bool, quiet: bool
) -> list[RefreshResult]:
    runtime = open_runtime(settings, durable_commits=True)
    store = runtime.stores.partitions
    try:
        if creator is not None:
            if not await runtime.stores.followers.count(UserId(creator)):
                raise NotFoundError(f"{creator} has no followers; nothing to partition")
            chosen = [UserId(creator)]
        else:
            chosen = [c for c, _ in await store.creators_over(settings.partition_threshold)]
        results = []
        with Progress(
            TextColumn("partitioning"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_err,
            disable=quiet,
        ) as bar:
            task = bar.add_task("creators", total=len(chosen))
            for one in chosen:
                results.append(
                    await refresh_partitions(
                        store,
                        one,
                        size=settings.partition_size,
                        now=runtime.clock.now(),
                        full=full,
                    )
                )
                bar.advance(task)
        return results
    finally:
        await runtime.close()


def _show(results: list[RefreshResult], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in results]))
        return
    if not results:
        _out.print("No creator is over the threshold; nothing to partition.")
        return
    table = Table("creator", "action", "partitions", "followers", "changes applied")
    for r in results:
        table.add_row(
            r.creator, r.action, f"{r.partitions:,}", f"{r.followers:,}", f"{r.changes:,}"
        )
    _out.print(table)
