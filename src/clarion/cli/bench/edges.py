"""Benchmarks of Clarion's edges: ingest through the HTTP API, push and email to the
providers' look-alikes, live streams to devices; and the whole suite as one report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clarion.cli.bench.shared import (
    BrokerOption,
    JsonOption,
    StoreOption,
    advance,
    app,
    check_backends,
    err,
    progress_bar,
)
from clarion.errors import InputError

# Each command imports its benchmark when it runs (see ``cli.bench.delivery``).


@app.command("ingest")
def ingest(
    seconds: Annotated[float, typer.Option(help="How long to send for.")] = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight.")] = 64,
    batch: Annotated[
        int, typer.Option(min=0, help="Events per request via /batch (0: one per request).")
    ] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes consuming meanwhile.")] = 2,
    api_processes: Annotated[int, typer.Option(min=1, help="HTTP server processes.")] = 1,
    broker: BrokerOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Accepted events per second through POST /v1/notifications (or /batch)."""
    from clarion.bench.ingest import run_ingest

    if seconds <= 0:
        raise InputError.single("seconds", "must be positive")
    check_backends(broker, store)
    err.print(f"sending for {seconds:g}s with {concurrency} requests in flight …")
    result = run_ingest(
        seconds=seconds,
        concurrency=concurrency,
        batch=batch,
        workers=workers,
        api_processes=api_processes,
        broker=broker,
        store=store,
    )
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("measure", "value", title=f"Ingest, {result.mode} event(s) per request")
    table.add_row("accepted events / s", f"{result.events_per_s:,.0f}")
    table.add_row("requests", f"{result.requests:,} ({result.errors:,} not accepted)")
    table.add_row("latency p50 / p99", f"{result.p50_ms:.1f} / {result.p99_ms:.1f} ms")
    table.add_row("events stored", f"{result.stored_events:,}")
    table.add_row("processes", f"{result.api_processes} API, {result.workers} workers")
    table.add_row("queues / stores", f"{result.broker} / {result.store}")
    Console().print(table)


@app.command("push")
def push(
    pushes: Annotated[
        int, typer.Option(min=1, help="Pushes per run (one device per person).")
    ] = 20_000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (also measured with 1).")
    ] = 2,
    as_json: JsonOption = False,
) -> None:
    """Pushes/s through the whole pipeline to the APNs look-alike over HTTP/2, beside the
    rate of bare HTTP/2 clients against the same server in the same run."""
    from clarion.bench.push import run_push

    with progress_bar() as bar:
        result = run_push(pushes, workers=workers, progress=advance(bar))
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("processes", "pipeline sends / s", "bare HTTP/2 requests / s", "ratio")
    table.title = f"{result.pushes:,} pushes to the APNs look-alike"
    for count, rate in result.sends_per_s_by_workers.items():
        raw = result.raw_h2_requests_per_s_by_processes[count]
        table.add_row(str(count), f"{rate:,.0f}", f"{raw:,.0f}", f"{rate / raw:.0%}")
    Console().print(table)


@app.command("email")
def email(
    messages: Annotated[int, typer.Option(min=1, help="Messages to send.")] = 2000,
    connections: Annotated[int, typer.Option(min=1, help="SMTP connections, each reused.")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Messages/s from the SMTP provider to the local SMTP server (STARTTLS), multipart
    text + HTML with one-click unsubscribe headers, over connections opened once."""
    from clarion.bench.email import run_email

    with progress_bar() as bar:
        result = run_email(messages, connections=connections, progress=advance(bar))
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("measure", "value", title=f"{result.messages:,} emails")
    table.add_row("messages / s", f"{result.messages_per_s:,.0f}")
    table.add_row("per message", f"{result.milliseconds_per_message:.2f} ms")
    table.add_row("connections", str(result.connections))
    Console().print(table)


@app.command("stream")
def stream(
    people: Annotated[int, typer.Option(help="People, each with --devices open streams.")] = 5_000,
    devices: Annotated[int, typer.Option(help="Open SSE streams per person.")] = 2,
    rate: Annotated[float, typer.Option(help="State updates published per second.")] = 15_000,
    seconds: Annotated[float, typer.Option(help="How long to measure for.")] = 20.0,
    storm: Annotated[
        bool, typer.Option(help="Then drop every stream at once and reconnect them.")
    ] = True,
    api_processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="HTTP server processes. \\[default: one per core, as a deployment holding"
            " many streams would run]",
            show_default=False,
        ),
    ] = None,
    broker: BrokerOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Live sync: open streams, state updates published per second, publish → device
    latency, memory per connection, and a reconnect storm that must lose nothing."""
    from clarion.bench.stream import run_stream

    if people < 1 or devices < 1 or rate <= 0 or seconds <= 0:
        raise InputError.single("people", "people, devices, rate and seconds must be positive")
    check_backends(broker, store)
    with progress_bar() as bar:
        result = run_stream(
            people,
            devices_each=devices,
            rate=rate,
            seconds=seconds,
            storm=storm,
            api_processes=api_processes or os.cpu_count() or 1,
            broker=broker,
            store=store,
            progress=advance(bar),
        )
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("measure", "value", title=f"{result.connections:,} live streams")
    table.add_row(
        "state updates / s",
        f"{result.updates_per_s:,.0f} (asked {result.target_updates_per_s:,.0f})",
    )
    table.add_row("messages to devices / s", f"{result.messages_per_s:,.0f}")
    table.add_row(
        "publish → device p50 / p99 / max",
        f"{result.p50_ms:.0f} / {result.p99_ms:.0f} / {result.max_ms:.0f} ms"
        f" ({result.samples:,} messages)",
    )
    table.add_row("memory per idle connection", f"{result.bytes_per_connection / 1024:,.1f} KiB")
    table.add_row("all connected in", f"{result.connect_s:.1f} s")
    if result.storm_reconnect_s is not None:
        table.add_row("reconnect storm: all back in", f"{result.storm_reconnect_s:.1f} s")
    table.add_row("lost / doubled / resets", f"{result.lost} / {result.doubled} / {result.resets}")
    table.add_row("backend", f"{result.backend}, {result.api_processes} API process(es)")
    busy = ", ".join(f"{part} {cores:.2f}" for part, cores in result.cpu_cores.items())
    table.add_row(f"CPU while measuring (cores of {result.cores})", busy)
    Console().print(table)


@app.command("report")
def report(
    out: Annotated[Path, typer.Option(help="Folder for report.md, report.json and the plots.")],
    quick: Annotated[
        bool, typer.Option("--quick", help="Every part on small sizes (seconds, not minutes).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the whole suite (fan-out at 1K to 1M, ingest, evaluation, push, P0 isolation)
    and write report.md, report.json and PNG plots; needs matplotlib (clarion\\[report])."""
    from clarion.bench.report import QUICK, Plan, run_report

    with progress_bar() as bar:
        doc = run_report(out, QUICK if quick else Plan(), progress=advance(bar))
    if as_json:
        summary = {k: doc[k] for k in ("machine", "commit", "plots")}
        typer.echo(json.dumps({"out": str(out), **summary}))
        return
    Console().print(f"Wrote {out / 'report.md'}, {out / 'report.json'} and the plots.")
