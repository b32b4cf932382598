"""``clarion bench``: measured numbers, printed as a table or as one JSON line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from rich.table import Table

from clarion.cli.common import Commands
from clarion.errors import InputError

if TYPE_CHECKING:
    from clarion.bench.fanout import FanoutReport

# Each command imports its benchmark when it runs: every ``clarion`` process (the API, each
# worker) loads this module, and importing them all up front cost 0.44 s of each start.

app = typer.Typer(
    cls=Commands,
    help="Benchmarks: fan-out, ingest, evaluation, aggregation, push and email throughput;"
    " P0 isolation; live streams.",
    no_args_is_help=True,
)
_err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
    )


def _advance(bar: Progress) -> Callable[[str, int, int | None], None]:
    tasks: dict[str, TaskID] = {}

    def advance(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    return advance


_BrokerOption = Annotated[
    str | None,
    typer.Option(
        help="Queues in this Redis database (redis://host:port/n; it must hold no Clarion"
        " queues, and they are removed afterwards). \\[default: embedded SQLite queues]",
        show_default=False,
    ),
]
_StoreOption = Annotated[
    str | None,
    typer.Option(
        help="Stores in this PostgreSQL database (postgresql://user@host:port/db; it must"
        " hold no Clarion data, and is emptied afterwards); needs --broker. The fan-out"
        " benchmark also measures its raw COPY rate. \\[default: the embedded SQLite stores]",
        show_default=False,
    ),
]


@app.command("fanout")
def fanout(
    followers: Annotated[int, typer.Option(help="Followers of the celebrity.")] = 1_000_000,
    workers: Annotated[
        str, typer.Option(help="Worker processes; a list such as 1,2 runs once for each.")
    ] = "2",
    batch_size: Annotated[int, typer.Option(help="Recipients per batch.")] = 1000,
    broker: _BrokerOption = None,
    partitions: Annotated[
        bool,
        typer.Option("--partitions", help="Precompute the celebrity's follower partitions first."),
    ] = False,
    store: _StoreOption = None,
    population: Annotated[
        str,
        typer.Option(
            help="realistic: every follower has a preference record (a fifth opted out, a"
            " tenth in quiet hours, a twentieth near a cap, a third with channel choices);"
            " defaults: nobody has one (the shared fast path); both: defaults, then"
            " realistic, reported side by side."
        ),
    ] = "both",
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """A celebrity fan-out: 202 → every follower's inbox (or their suppression)."""
    if population not in ("realistic", "defaults", "both"):
        raise InputError.single("population", "realistic, defaults or both")
    try:
        counts = [int(w) for w in workers.split(",") if w.strip()]
    except ValueError:
        raise InputError.single("workers", "a number, or numbers separated by commas") from None
    if not counts or min(counts) < 1:
        raise InputError.single("workers", "at least one worker process")
    _check_backends(broker, store)
    options = {"batch_size": batch_size, "broker": broker, "partitions": partitions}
    results = [
        _fanout_run(followers, count, population, store=store, **options) for count in counts
    ]
    result = results[-1]
    rates = [r.recipients_per_s for r in results]
    factor = round(rates[-1] / rates[0], 2) if rates[0] else None
    if as_json:
        doc = result.to_json()
        if len(results) > 1:
            doc["scaling"] = {"workers": counts, "recipients_per_s": rates, "factor": factor}
        typer.echo(json.dumps(doc))
        return
    for one in results:
        _fanout_table(one)
    if len(results) > 1:
        each = ", ".join(f"{w} → {r:,.0f}/s" for w, r in zip(counts, rates, strict=True))
        Console().print(f"Scaling with worker processes: {each} (factor {factor})")


def _fanout_run(followers: int, workers: int, population: str, **options: Any) -> FanoutReport:
    """One fan-out per population asked for; with ``both``, the realistic report carries
    the all-defaults figure."""
    from clarion.bench.fanout import run_fanout

    runs = ["defaults", "realistic"] if population == "both" else [population]
    found: list[FanoutReport] = []
    for chosen in runs:
        with _progress() as bar:
            found.append(
                run_fanout(
                    followers,
                    workers=workers,
                    population=chosen,
                    progress=_advance(bar),
                    **options,
                )
            )
    if len(found) == 2:
        found[1].defaults_recipients_per_s = found[0].recipients_per_s
    return found[-1]


def _check_backends(broker: str | None, store: str | None) -> None:
    if store is not None and broker is None:
        raise InputError.single("store", "needs --broker redis://… too: the queues go to Redis")


def _fanout_table(result: FanoutReport) -> None:
    title = (
        f"Fan-out to {result.recipients:,} followers ({result.population} preferences),"
        f" {result.workers} worker(s),"
        f" queues in {result.broker}, stores in {result.store}"
    )
    table = Table("measure", "value", title=title)
    table.add_row("202 → first inbox entry", f"{result.seconds_to_first * 1000:.0f} ms")
    table.add_row("202 → last inbox entry", f"{result.seconds_total:.2f} s")
    table.add_row(f"recipients / s ({result.population})", f"{result.recipients_per_s:,.0f}")
    if result.defaults_recipients_per_s is not None:
        table.add_row("recipients / s (all defaults)", f"{result.defaults_recipients_per_s:,.0f}")
    table.add_row("inbox entries written", f"{result.delivered:,}")
    table.add_row("suppressed / held", f"{result.suppressed:,} / {result.held:,}")
    table.add_row("peak memory (all processes)", f"{result.peak_rss_mb:,.0f} MB")
    if result.partition_build_s is not None:
        table.add_row("partition build (before)", f"{result.partition_build_s:.2f} s")
    table.add_row("raw SQLite insert rate", f"{result.raw_insert_rows_per_s:,.0f} rows/s")
    table.add_row("our rate / raw rate", f"{result.fraction_of_raw:.0%}")
    if result.raw_redis_ops_per_s is not None:
        table.add_row("raw Redis pipeline rate", f"{result.raw_redis_ops_per_s:,.0f} ops/s")
    if result.raw_pg_copy_rows_per_s is not None:
        table.add_row("raw PostgreSQL COPY rate", f"{result.raw_pg_copy_rows_per_s:,.0f} rows/s")
    for stage, s in result.stages.items():
        table.add_row(f"busy in {stage}", f"{s['busy_s']:.2f} s over {s['messages']:,} messages")
    if result.cpu_s:
        used = ", ".join(f"{name} {s:.1f}" for name, s in result.cpu_s.items())
        table.add_row("CPU seconds per process", used)
    Console().print(table)


@app.command("ingest")
def ingest(
    seconds: Annotated[float, typer.Option(help="How long to send for.")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 64,
    batch: Annotated[
        int, typer.Option(help="Events per request via /batch (0: one per request).")
    ] = 0,
    workers: Annotated[int, typer.Option(help="Worker processes consuming meanwhile.")] = 2,
    api_processes: Annotated[int, typer.Option(help="HTTP server processes.")] = 1,
    broker: _BrokerOption = None,
    store: _StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Accepted events per second through POST /v1/notifications (or /batch)."""
    from clarion.bench.ingest import run_ingest

    _check_backends(broker, store)
    _err.print(f"sending for {seconds:g}s with {concurrency} requests in flight …")
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


@app.command("evaluate")
def evaluate(
    batch: Annotated[int, typer.Option(help="Recipients in the batch to report.")] = 10_000,
    others: Annotated[
        str, typer.Option(help="Other batch sizes to measure, comma-separated.")
    ] = "1000,100000",
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Preference evaluation of one batch (80% defaults), in CPU ms: warm (people evaluated
    before, whose documents the worker remembers) at every size, and cold (people never
    evaluated before) at the reported size."""
    from clarion.bench.evaluate import run_evaluate

    extra = [int(n) for n in others.split(",") if n.strip()]
    result = run_evaluate(batch, extra)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("recipients", "CPU ms", title="Evaluating one batch (warm)")
    for size, cpu in result.sizes.items():
        table.add_row(f"{int(size):,}", f"{cpu:.1f}")
    Console().print(table)
    Console().print(
        f"{result.with_preferences:,} of {result.batch_size:,} had a preference "
        f"record; outcomes: {result.outcomes}"
    )
    Console().print(
        f"cold (people never evaluated before), {result.batch_size:,}: "
        f"{result.cold_cpu_ms:.1f} ms CPU"
    )


@app.command("push")
def push(
    pushes: Annotated[int, typer.Option(help="Pushes per run (one device per person).")] = 20_000,
    workers: Annotated[int, typer.Option(help="Worker processes (also measured with 1).")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Pushes/s through the whole pipeline to the APNs look-alike over HTTP/2, beside the
    rate of bare HTTP/2 clients against the same server in the same run."""
    from clarion.bench.push import run_push

    with _progress() as bar:
        result = run_push(pushes, workers=workers, progress=_advance(bar))
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
    messages: Annotated[int, typer.Option(help="Messages to send.")] = 2000,
    connections: Annotated[int, typer.Option(help="SMTP connections, each reused.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Messages/s from the SMTP provider to the local SMTP server (STARTTLS), multipart
    text + HTML with one-click unsubscribe headers, over connections opened once."""
    from clarion.bench.email import run_email

    with _progress() as bar:
        result = run_email(messages, connections=connections, progress=_advance(bar))
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("measure", "value", title=f"{result.messages:,} emails")
    table.add_row("messages / s", f"{result.messages_per_s:,.0f}")
    table.add_row("per message", f"{result.milliseconds_per_message:.2f} ms")
    table.add_row("connections", str(result.connections))
    Console().print(table)


@app.command("isolation")
def isolation(
    flood: Annotated[int, typer.Option(help="Recipients of the P2 campaign.")] = 1_000_000,
    otps: Annotated[
        int | None,
        typer.Option(min=1, help="OTPs timed while idle. \\[default: 300]", show_default=False),
    ] = None,
    rounds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Campaigns, one after the other; the OTPs sent during each are pooled"
            " (one flood alone is too short for a p99).",
        ),
    ] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """P0 OTP latency (POST → SMS look-alike) idle and under a flood of P2 recipients,
    with what load shedding did meanwhile."""
    from clarion.bench.isolation import IDLE_OTPS, run_isolation

    with _progress() as bar:
        result = run_isolation(
            flood, otps_idle=otps or IDLE_OTPS, rounds=rounds, progress=_advance(bar)
        )
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("OTP latency", "idle", "under the flood", title="P0 under a P2 flood")
    table.add_row("p50", f"{result.p0_p50_idle_ms:.0f} ms", f"{result.p0_p50_flood_ms:.0f} ms")
    table.add_row("p99", f"{result.p0_p99_idle_ms:.0f} ms", f"{result.p0_p99_flood_ms:.0f} ms")
    table.add_row(
        "p99 of the API's part (POST → 202)",
        f"{result.p0_accept_p99_idle_ms:.0f} ms",
        f"{result.p0_accept_p99_flood_ms:.0f} ms",
    )
    table.add_row("OTPs timed", f"{result.otps_idle:,}", f"{result.otps_flood:,}")
    Console().print(table)
    Console().print(
        f"p99 under flood / idle: {result.p99_ratio:.2f} times idle (target: at most 2). Campaign:"
        f" {result.rounds} x {result.flood_recipients:,} recipients in"
        f" {result.flood_seconds:.1f} s ({result.flood_recipients_per_s:,.0f} per second);"
        f" {result.p2_refused_during_flood} of {result.p2_probes_during_flood} P2 events"
        f" refused meanwhile; load levels: {' → '.join(result.load_levels_seen) or 'none'}"
    )


@app.command("aggregate")
def aggregate(
    events: Annotated[int, typer.Option(help="Likes to send (batches of 1,000).")] = 1_000_000,
    window: Annotated[float, typer.Option(help="The like type's aggregation window, s.")] = 30.0,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    concurrency: Annotated[int, typer.Option(help="Batch requests in flight.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Likes on 10,000 photos of 1,000 people, with push on: events/s from the first 202 to
    the last inbox update, and how few pushes they became."""
    from clarion.bench.aggregate import run_aggregate

    if events < 1 or window < 1:
        raise InputError.single("events", "at least one event, and a window of a second or more")
    with _progress() as bar:
        result = run_aggregate(
            events, window_s=window, workers=workers, concurrency=concurrency,
            progress=_advance(bar),
        )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("measure", "value", title=f"{result.events:,} likes, aggregated")
    table.add_row("first 202 → last inbox update", f"{result.seconds:.1f} s")
    table.add_row("events / s", f"{result.events_per_s:,.0f}")
    table.add_row("keys (owner, photo)", f"{result.keys:,}")
    table.add_row("windows opened", f"{result.windows:,} of {result.window_s:g} s")
    table.add_row("pushes", f"{result.pushes:,} ({result.compression:,.0f} likes per push)")
    table.add_row("pushes per key and window", f"{result.pushes_per_key_window:.2f} (at most 2)")
    table.add_row("peak memory (all processes)", f"{result.peak_rss_mb:,.0f} MB")
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
    broker: _BrokerOption = None,
    store: _StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Live sync: open streams, state updates published per second, publish → device
    latency, memory per connection, and a reconnect storm that must lose nothing."""
    from clarion.bench.stream import run_stream

    if people < 1 or devices < 1 or rate <= 0 or seconds <= 0:
        raise InputError.single("people", "people, devices, rate and seconds must be positive")
    _check_backends(broker, store)
    with _progress() as bar:
        result = run_stream(
            people,
            devices_each=devices,
            rate=rate,
            seconds=seconds,
            storm=storm,
            api_processes=api_processes or os.cpu_count() or 1,
            broker=broker,
            store=store,
            progress=_advance(bar),
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
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Run the whole suite (fan-out at 1K to 1M, ingest, evaluation, push, P0 isolation)
    and write report.md, report.json and PNG plots; needs matplotlib (clarion[report])."""
    from clarion.bench.report import QUICK, Plan, run_report

    with _progress() as bar:
        doc = run_report(out, QUICK if quick else Plan(), progress=_advance(bar))
    if as_json:
        summary = {k: doc[k] for k in ("machine", "commit", "plots")}
        typer.echo(json.dumps({"out": str(out), **summary}))
        return
    Console().print(f"Wrote {out / 'report.md'}, {out / 'report.json'} and the plots.")


@app.command("campaign")
def campaign(
    people: Annotated[int, typer.Option(help="The audience: this many people.")] = 1_000_000,
    throttle: Annotated[float, typer.Option(help="The throttled campaign's rate.")] = 10_000,
    throttle_seconds: Annotated[float, typer.Option(help="How long to measure it.")] = 60.0,
    broker: _BrokerOption = None,
    store: _StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Audience upload, a segment over everyone, an unthrottled campaign to everyone's
    inbox (every one with a preference record), and a throttled one's rate."""
    from clarion.bench.campaign import run_campaign

    if people < 1 or throttle <= 0 or throttle_seconds <= 0:
        raise InputError.single("people", "people, throttle and seconds must be positive")
    _check_backends(broker, store)
    with _progress() as bar:
        result = run_campaign(
            people, throttle=throttle, throttle_seconds=throttle_seconds, broker=broker,
            store=store, progress=_advance(bar),
        )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    table = Table("measure", "value", title=f"Campaigns, {result.people:,} people")
    table.add_row("audience upload", f"{result.upload_ids_per_s:,.0f} ids/s")
    table.add_row(
        "segment (3 attributes)",
        f"{result.segment_users_per_s:,.0f} people/s ({result.segment_matched:,} matched)",
    )
    table.add_row(
        "unthrottled campaign",
        f"{result.campaign_recipients_per_s:,.0f} recipients/s ({result.campaign_seconds:.1f} s)",
    )
    table.add_row(
        f"throttled at {result.throttle_per_s:,.0f}/s",
        f"{result.throttle_measured_per_s:,.0f}/s over {result.throttle_seconds:g} s"
        f" ({result.throttle_error_pct:.1f} % off)",
    )
    table.add_row("backend", result.backend)
    Console().print(table)
