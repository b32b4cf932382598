"""``clarion slo``: each priority against its objective over a window, and whose fault
every miss was."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from clarion.cli.common import (
    BrokerOption,
    DbOption,
    JsonOption,
    StoreOption,
    settings_for,
    with_runtime,
)
from clarion.runtime import Runtime
from clarion.slo import TARGETS, Counts

_out = Console()


def slo(
    hours: Annotated[
        float, typer.Option(min=0.01, help="The window: this many hours to now.")
    ] = 24.0,
    db: DbOption = None,
    broker: BrokerOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deliveries per priority against the objectives (P0: 99.9 % within 1 s of acceptance,
    P1: 99 % within 10 s, P2: best effort), from the delivery log. A miss is the
    platform's (late on its first attempt, expired) or the provider's (late after its
    failures, given up on). Refused input — the producer's — is never stored: see
    clarion_failures_total{party="producer"} on /metrics."""
    settings = settings_for(db, broker=broker, store=store)
    until = time.time()
    since = until - hours * 3600

    async def read(runtime: Runtime) -> tuple[list[Counts], int]:
        counts = await runtime.stores.deliveries.slo_counts(since, until)
        return counts, await runtime.broker.dead_letter_count()

    counts, dead = with_runtime(settings, read)
    report = [_priority(c) for c in counts]
    if as_json:
        doc = {"hours": hours, "priorities": report, "dead_letters": dead}
        typer.echo(json.dumps(doc, indent=2))
        return
    table = Table(
        "priority", "objective", "counted", "in time", "met", "platform", "provider",
        "held on purpose", title=f"Objectives over the last {hours:g} h",
    )  # fmt: skip
    for r in report:
        objective = "best effort" if r["target_share"] is None else (
            f"{r['target_share']:.1%} within {r['within_s']:g} s"
        )  # fmt: skip
        share = "—" if r["share"] is None else f"{r['share']:.2%}"
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "—"}[r["met"]]
        table.add_row(
            r["priority"], objective, f"{r['counted']:,}", share, met,
            f"{r['platform']:,}", f"{r['provider']:,}", f"{r['deferred']:,}",
        )  # fmt: skip
    _out.print(table)
    _out.print(
        f"Platform: late on the first attempt or expired; provider: late after its failures,"
        f" or given up on. Dead letters waiting: {dead:,} (the platform's)."
    )


def _priority(c: Counts) -> dict[str, Any]:
    target = TARGETS.get(c.priority)
    share = c.share
    return {
        "priority": c.priority.value,
        "target_share": None if target is None else target.share,
        "within_s": None if target is None else target.within_s,
        "counted": c.counted,
        "in_time": c.in_time,
        "share": share,
        "met": None if target is None or share is None else share >= target.share,
        "platform": c.late_platform + c.expired,
        "provider": c.late_provider + c.failed_provider,
        "deferred": c.deferred,
        "late_platform": c.late_platform,
        "expired": c.expired,
        "late_provider": c.late_provider,
        "failed_provider": c.failed_provider,
    }
