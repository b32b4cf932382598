"""Benchmarks of the delivery pipeline: a celebrity fan-out, one batch's evaluation, a
campaign, P0 isolation under a flood, and aggregation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

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
    progress_bar,
)
from clarion.errors import InputError

if TYPE_CHECKING:
    from clarion.bench.fanout import FanoutReport

# Each command imports its benchmark when it runs: every ``clarion`` process (the API, each
# worker) loads this module, and importing them all up front cost 0.44 s of each start.


@app.command("fanout")
def fanout(
    followers: Annotated[int, typer.Option(min=1, help="Followers of the celebrity.")] = 1_000_000,
    workers: Annotated[
        str, typer.Option(help="Worker processes; a list such as 1,2 runs once for each.")
    ] = "2",
    batch_size: Annotated[int, typer.Option(min=1, help="Recipients per batch.")] = 1000,
    broker: BrokerOption = None,
    partitions: Annotated[
        bool,
        typer.Option("--partitions", help="Precompute the celebrity's follower partitions first."),
    ] = False,
    store: StoreOption = None,
    population: Annotated[
        str,
        typer.Option(
            help="realistic: every follower has a preference record (a fifth opted out, a"
            " tenth in quiet hours, a twentieth near a cap, a third with channel choices);"
            " defaults: nobody has one (the shared fast path); both: defaults, then"
            " realistic, reported side by side."
        ),
    ] = "both",
    as_json: JsonOption = False,
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
    check_backends(broker, store)
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
        with progress_bar() as bar:
            found.append(
                run_fanout(
                    followers,
                    workers=workers,
                    population=chosen,
                    progress=advance(bar),
                    **options,
                )
            )
    if len(found) == 2:
        found[1].defaults_recipients_per_s = found[0].recipients_per_s
    return found[-1]


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


@app.command("evaluate")
def evaluate(
    batch: Annotated[int, typer.Option(min=1, help="Recipients in the batch to report.")] = 10_000,
    others: Annotated[
        str, typer.Option(help="Other batch sizes to measure, comma-separated.")
    ] = "1000,100000",
    as_json: JsonOption = False,
) -> None:
    """Preference evaluation of one batch (80% defaults), in CPU ms: warm (people evaluated
    before, whose documents the worker remembers) at every size, and cold (people never
    evaluated before) at the reported size."""
    from clarion.bench.evaluate import run_evaluate

    try:
        extra = [int(n) for n in others.split(",") if n.strip()]
    except ValueError:
        raise InputError.single("others", "batch sizes separated by commas") from None
    if any(n < 1 for n in extra):
        raise InputError.single("others", "every batch size must be at least 1")
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


@app.command("campaign")
def campaign(
    people: Annotated[int, typer.Option(min=1, help="The audience: this many people.")] = 1_000_000,
    throttle: Annotated[float, typer.Option(help="The throttled campaign's rate.")] = 10_000,
    throttle_seconds: Annotated[float, typer.Option(help="How long to measure it.")] = 60.0,
    broker: BrokerOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Audience upload, a segment over everyone, an unthrottled campaign to everyone's
    inbox (every one with a preference record), and a throttled one's rate."""
    from clarion.bench.campaign import run_campaign

    if people < 1 or throttle <= 0 or throttle_seconds <= 0:
        raise InputError.single("people", "people, throttle and seconds must be positive")
    check_backends(broker, store)
    with progress_bar() as bar:
        result = run_campaign(
            people, throttle=throttle, throttle_seconds=throttle_seconds, broker=broker,
            store=store, progress=advance(bar),
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


@app.command("isolation")
def isolation(
    flood: Annotated[int, typer.Option(min=1, help="Recipients of the P2 campaign.")] = 1_000_000,
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
    as_json: JsonOption = False,
) -> None:
    """P0 OTP latency (POST → SMS look-alike) idle and under a flood of P2 recipients,
    with what load shedding did meanwhile."""
    from clarion.bench.isolation import IDLE_OTPS, run_isolation

    with progress_bar() as bar:
        result = run_isolation(
            flood, otps_idle=otps or IDLE_OTPS, rounds=rounds, progress=advance(bar)
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
        f"p99 under flood / idle: {result.p99_ratio:.2f} times idle (target: at most 1.5)."
        f" Campaign: {result.rounds} x {result.flood_recipients:,} recipients in"
        f" {result.flood_seconds:.1f} s ({result.flood_recipients_per_s:,.0f} per second);"
        f" {result.p2_refused_during_flood} of {result.p2_probes_during_flood} P2 events"
        f" refused meanwhile; load levels: {' → '.join(result.load_levels_seen) or 'none'}"
    )


@app.command("aggregate")
def aggregate(
    events: Annotated[
        int, typer.Option(min=1, help="Likes to send (batches of 1,000).")
    ] = 1_000_000,
    window: Annotated[float, typer.Option(help="The like type's aggregation window, s.")] = 30.0,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    concurrency: Annotated[int, typer.Option(min=1, help="Batch requests in flight.")] = 8,
    as_json: JsonOption = False,
) -> None:
    """Likes on 10,000 photos of 1,000 people, with push on: events/s from the first 202 to
    the last inbox update, and how few pushes they became."""
    from clarion.bench.aggregate import run_aggregate

    if events < 1 or window < 1:
        raise InputError.single("events", "at least one event, and a window of a second or more")
    with progress_bar() as bar:
        result = run_aggregate(
            events, window_s=window, workers=workers, concurrency=concurrency,
            progress=advance(bar),
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
