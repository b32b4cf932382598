"""``clarion bench``: measured numbers, printed as a table or as one JSON line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clarion.bench.fanout import run_fanout

app = typer.Typer(help="Benchmarks: fan-out and ingest throughput.", no_args_is_help=True)
_err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
    )


@app.command("fanout")
def fanout(
    followers: Annotated[int, typer.Option(help="Followers of the celebrity.")] = 1_000_000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Recipients per batch.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """A celebrity fan-out on the embedded backend: 202 → every follower's inbox."""
    with _progress() as bar:
        tasks: dict[str, object] = {}

        def advance(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)  # type: ignore[arg-type]

        result = run_fanout(followers, workers=workers, batch_size=batch_size, progress=advance)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("measure", "value", title=f"Fan-out to {result.recipients:,} followers")
    table.add_row("202 → first inbox entry", f"{result.seconds_to_first * 1000:.0f} ms")
    table.add_row("202 → last inbox entry", f"{result.seconds_total:.2f} s")
    table.add_row("recipients / s", f"{result.recipients_per_s:,.0f}")
    table.add_row("inbox entries written", f"{result.delivered:,}")
    table.add_row("peak memory (all processes)", f"{result.peak_rss_mb:,.0f} MB")
    table.add_row("raw SQLite insert rate", f"{result.raw_insert_rows_per_s:,.0f} rows/s")
    table.add_row("our rate / raw rate", f"{result.fraction_of_raw:.0%}")
    for stage, s in result.stages.items():
        table.add_row(f"busy in {stage}", f"{s['busy_s']:.2f} s over {s['messages']:,} messages")
    Console().print(table)
