"""``clarion bench report``: the benchmark suite in one run, written as ``report.json``,
``report.md`` and PNG plots.

The suite: fan-out at 1K, 10K, 100K and 1M followers (with the raw SQLite insert rate
measured in each run), ingest one event per request and in batches of 1,000, the 10,000-
recipient evaluation, push through the APNs look-alike, and P0 isolation under P2 floods.
The plots: throughput against fan-out size (log-log, with the raw insert line); the P0
latency distribution idle and under the flood; where the workers spent their time in the
largest fan-out. Every figure comes from this run on this machine, which the report names.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarion import __version__
from clarion.bench.driver import Progress
from clarion.bench.evaluate import run_evaluate
from clarion.bench.fanout import run_fanout
from clarion.bench.ingest import run_ingest
from clarion.bench.isolation import run_isolation
from clarion.bench.push import run_push
from clarion.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Plan:
    sizes: Sequence[int] = (1_000, 10_000, 100_000, 1_000_000)
    ingest_seconds: float = 10.0
    evaluate_batch: int = 10_000
    pushes: int = 20_000
    flood: int = 1_000_000
    rounds: int = 3


QUICK = Plan(sizes=(500, 2_000), ingest_seconds=1.0, evaluate_batch=1_000, pushes=300,
             flood=5_000, rounds=1)  # fmt: skip
"""For trying the command (and its test): every part runs, on sizes that take seconds."""


def run_report(out: Path, plan: Plan, progress: Progress | None = None) -> dict[str, Any]:
    """Run the suite, write the files into ``out``; returns what ``report.json`` holds."""
    pyplot = _pyplot()
    report = progress or (lambda *_: None)
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"machine": machine(), "clarion": __version__, "commit": _commit()}
    doc["started_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    steps: list[tuple[str, Callable[[], Any]]] = [
        *[(f"fan-out {n:,}", _fanout(n)) for n in plan.sizes],
        ("ingest, one per request", lambda: run_ingest(seconds=plan.ingest_seconds).to_json()),
        (
            "ingest, batches of 1,000",
            lambda: run_ingest(seconds=plan.ingest_seconds, batch=1000, concurrency=8).to_json(),
        ),
        ("evaluation", lambda: run_evaluate(plan.evaluate_batch, others=()).to_json()),
        ("push", lambda: run_push(plan.pushes).to_json()),
        ("P0 isolation", lambda: run_isolation(plan.flood, rounds=plan.rounds).to_json()),
    ]
    results: dict[str, Any] = {}
    for done, (name, step) in enumerate(steps):
        report("report: " + name, done, len(steps))
        results[name] = step()
    report("report: writing", len(steps), len(steps))
    fanouts = [results[f"fan-out {n:,}"] for n in plan.sizes]
    doc |= {
        "fanout": fanouts,
        "ingest": {
            "single": results["ingest, one per request"],
            "batched": results["ingest, batches of 1,000"],
        },
        "evaluate": results["evaluation"],
        "push": results["push"],
        "isolation": results["P0 isolation"],
    }
    doc["plots"] = _plots(pyplot, out, doc)
    (out / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "report.md").write_text(markdown(doc))
    return doc


def _fanout(followers: int) -> Callable[[], dict[str, Any]]:
    return lambda: run_fanout(followers).to_json()


def _pyplot() -> Any:
    try:
        import matplotlib  # an extra: only this command needs it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "the report draws with matplotlib: pip install 'clarion[report]'"
        ) from None
    return plt


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
        memory_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration, ValueError):
        memory_kb = 0
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - informational only
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).parent,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def _plots(plt: Any, out: Path, doc: dict[str, Any]) -> dict[str, str]:
    files = {}
    sizes = [f["recipients"] for f in doc["fanout"]]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.loglog(sizes, [f["recipients_per_s"] for f in doc["fanout"]], "o-", label="Clarion")
    axes.loglog(
        sizes,
        [f["raw_insert_rows_per_s"] for f in doc["fanout"]],
        "s--",
        label="raw SQLite inserts (same run)",
    )
    axes.set_xlabel("followers (recipients)")
    axes.set_ylabel("recipients / s (202 → last inbox entry)")
    axes.set_title("Fan-out throughput")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    files["fanout"] = _save(figure, out / "fanout.png", plt)

    iso = doc["isolation"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, values, p99 in (
        ("idle", iso["idle_ms"], iso["p0_p99_idle_ms"]),
        ("under the P2 flood", iso["flood_ms"], iso["p0_p99_flood_ms"]),
    ):
        ordered = sorted(values)
        if ordered:  # labelled with the benchmark's own p99, as the report's text is
            shares = [(i + 1) / len(ordered) for i in range(len(ordered))]
            axes.plot(ordered, shares, label=f"{label} (p99 {p99:.0f} ms)")
    axes.set_xscale("log")
    axes.set_xlabel("OTP: POST → SMS look-alike (ms)")
    axes.set_ylabel("share of OTPs")
    campaigns = f"{iso['rounds']} campaigns of {iso['flood_recipients']:,}"
    axes.set_title(f"P0 latency, idle and under {campaigns}")
    axes.grid(True, alpha=0.3)
    axes.legend()
    files["isolation"] = _save(figure, out / "p0_latency.png", plt)

    stages = doc["fanout"][-1].get("stages") or {}
    figure, axes = plt.subplots(figsize=(7, 4.5))
    names = sorted(stages, key=lambda s: -stages[s]["busy_s"])
    axes.barh(names, [stages[s]["busy_s"] for s in names])
    axes.invert_yaxis()
    axes.set_xlabel("worker seconds, all workers")
    axes.set_title(f"Where the {sizes[-1]:,}-follower fan-out spent its time")
    files["stages"] = _save(figure, out / "stages.png", plt)
    return files


def _save(figure: Any, path: Path, plt: Any) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# Clarion benchmark report",
        "",
        f"Clarion {doc['clarion']} (commit {doc['commit'] or 'unknown'}), run"
        f" {doc['started_at']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB,"
        f" {m['system']}, Python {m['python']}, SQLite {m['sqlite']}. Embedded backend; the"
        " load generators and provider look-alikes share the machine.",
        "",
        "## Fan-out (every follower has a preference record: the full path)",
        "",
        "| followers | 202 → first entry | 202 → last entry | recipients/s | raw inserts/s |"
        " peak memory |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for f in doc["fanout"]:
        lines.append(
            f"| {f['recipients']:,} | {f['seconds_to_first']:.2f} s | {f['seconds_total']:.2f} s"
            f" | {f['recipients_per_s']:,.0f} | {f['raw_insert_rows_per_s']:,.0f}"
            f" | {f['peak_rss_mb']:,.0f} MB |"
        )
    single, batched = doc["ingest"]["single"], doc["ingest"]["batched"]
    ev, push, iso = doc["evaluate"], doc["push"], doc["isolation"]
    lines += [
        "",
        f"![Fan-out throughput]({doc['plots']['fanout']})",
        "",
        f"![Time per stage]({doc['plots']['stages']})",
        "",
        "## Ingest, evaluation, push",
        "",
        "| measure | figure |",
        "|---|---:|",
        f"| ingest, one event per request ({single['concurrency']} in flight) |"
        f" {single['events_per_s']:,.0f} events/s, p99 {single['p99_ms']:.0f} ms |",
        f"| ingest, batches of 1,000 ({batched['concurrency']} in flight) |"
        f" {batched['events_per_s']:,.0f} events/s, p50 {batched['p50_ms']:.0f} ms |",
        f"| evaluating a batch of {ev['batch_size']:,}, warm / cold |"
        f" {ev['cpu_ms']:.1f} / {ev['cold_cpu_ms']:.1f} ms CPU |",
        f"| push through the APNs look-alike ({push['workers']} workers) |"
        f" {push['sends_per_s']:,.0f} sends/s ({push['fraction_of_raw']:.0%} of bare HTTP/2) |",
        "",
        "## P0 isolation",
        "",
        f"OTP p99 idle {iso['p0_p99_idle_ms']:.0f} ms, under {iso['rounds']} campaigns of"
        f" {iso['flood_recipients']:,} {iso['p0_p99_flood_ms']:.0f} ms"
        f" ({iso['p99_ratio']:.2f} times idle), from {iso['otps_idle']} and"
        f" {iso['otps_flood']} OTPs.",
        "",
        f"![P0 latency]({doc['plots']['isolation']})",
        "",
    ]
    return "\n".join(lines)
