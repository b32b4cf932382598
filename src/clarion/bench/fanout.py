"""A celebrity fan-out, timed from the 202, on the embedded backend or with Redis queues.

Followers are bulk-loaded first (not timed), and with ``partitions`` cut into precomputed
partitions (timed apart). Then one ``followers`` event goes through the real API to real
worker processes; we report the time from the 202 to the first inbox entry and to the last,
recipients per second, the peak memory of every process, where the workers spent their
time, and the raw SQLite insert (and Redis pipeline, PostgreSQL COPY) rates measured in the
same run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clarion.bench.backends import owned_backends
from clarion.bench.driver import Progress, send_event, wait_until_evaluated
from clarion.bench.population import realistic
from clarion.bench.raw import (
    postgres_copy_rows_per_s,
    redis_pipeline_ops_per_s,
    sqlite_insert_rows_per_s,
)
from clarion.config import Settings
from clarion.keys import create_key
from clarion.launch import LocalClarion, cpu_seconds, peak_rss_mb
from clarion.models import Channel, Priority, TypeSpec
from clarion.pipeline.partitions import refresh_partitions
from clarion.runtime import Runtime, open_runtime
from clarion.supervisor import standard_workers
from clarion.types import EventId, UserId

CREATOR = UserId("celebrity")
_LOAD_CHUNK = 100_000

_EVENT = {"type": "new_post", "actor": CREATOR, "fan_out": "followers", "object": "post_1"}


@dataclass
class FanoutReport:
    recipients: int
    delivered: int
    seconds_to_first: float
    seconds_total: float
    recipients_per_s: float
    peak_rss_mb: float
    raw_insert_rows_per_s: float
    fraction_of_raw: float
    workers: int
    batch_size: int
    broker: str = "sqlite"
    store: str = "sqlite"
    partition_build_s: float | None = None
    """Seconds to precompute the celebrity's partitions (not in ``seconds_total``)."""
    raw_redis_ops_per_s: float | None = None
    raw_pg_copy_rows_per_s: float | None = None
    """With the stores in PostgreSQL: its raw COPY rate, the ceiling they work under."""
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    population: str = "realistic"
    """``realistic``: every follower has a preference record (``bench.population``);
    ``defaults``: nobody has one, and all share one verdict (the easy path)."""
    suppressed: int = 0
    held: int = 0
    defaults_recipients_per_s: float | None = None
    """With ``--population both``: the all-defaults run's figure, for comparison."""
    cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds each process used (the API, each worker): where the time went."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_fanout(
    followers: int,
    *,
    workers: int = 2,
    batch_size: int = 1000,
    broker: str | None = None,
    partitions: bool = False,
    store: str | None = None,
    population: str = "realistic",
    progress: Progress | None = None,
) -> FanoutReport:
    report = progress or (lambda *_: None)
    with owned_backends(broker, store), tempfile.TemporaryDirectory(prefix="clarion-") as scratch:
        settings = Settings(
            db=Path(scratch) / "bench.db",
            batch_size=batch_size,
            broker=broker,
            store=store,
            partition_size=batch_size,
        )
        key = asyncio.run(_prepare(settings, followers, population, report))
        built_s = asyncio.run(_partition(settings, report)) if partitions else None
        with LocalClarion(settings, standard_workers(workers, 0)) as local:
            accepted_at, event_id = send_event(local.url, key, _EVENT)
            evaluated_at = wait_until_evaluated(local.url, key, event_id, followers, report)
            rss = peak_rss_mb(list(local.pids().values()))
            cpu = cpu_seconds(local.pids())
        status, delivered, stages = asyncio.run(_results(settings, event_id))
    report("raw sqlite insert rate", 0, None)
    raw = sqlite_insert_rows_per_s()
    raw_redis = raw_pg = None
    if broker is not None:
        report("raw redis pipeline rate", 0, None)
        raw_redis = round(redis_pipeline_ops_per_s(broker))
    if store is not None:
        report("raw postgresql copy rate", 0, None)
        raw_pg = round(postgres_copy_rows_per_s(store))
    first = (status.first_delivery_at or accepted_at) - accepted_at
    total = (status.completed_at or evaluated_at) - accepted_at
    rate = status.recipients / total if total > 0 else 0.0
    return FanoutReport(
        recipients=status.recipients,
        delivered=delivered,
        seconds_to_first=round(first, 4),
        seconds_total=round(total, 3),
        recipients_per_s=round(rate),
        peak_rss_mb=round(rss, 1),
        raw_insert_rows_per_s=round(raw),
        fraction_of_raw=round(rate / raw, 3) if raw else 0.0,
        workers=workers,
        batch_size=batch_size,
        broker="redis" if broker else "sqlite",
        store="postgresql" if store else "sqlite",
        partition_build_s=None if built_s is None else round(built_s, 3),
        raw_redis_ops_per_s=raw_redis,
        raw_pg_copy_rows_per_s=raw_pg,
        stages=stages,
        population=population,
        suppressed=status.suppressed,
        held=status.held,
        cpu_s=cpu,
    )


async def _prepare(settings: Settings, followers: int, population: str, report: Progress) -> str:
    runtime = open_runtime(settings)
    try:
        await runtime.stores.types.put(
            TypeSpec("new_post", Priority.P1, (Channel.IN_APP,), 3600), runtime.clock.now()
        )
        await load_followers(runtime, CREATOR, followers, report)
        if population == "realistic":
            report("preference records", 0, followers)
            ids = [UserId(f"u{i:09d}") for i in range(followers)]
            await realistic(runtime, ids, "new_post", time.time())
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="bench", admin=True)
        return secret
    finally:
        await runtime.close()


async def _partition(settings: Settings, report: Progress) -> float:
    runtime = open_runtime(settings)
    try:
        report("precomputing partitions", 0, None)
        started = time.perf_counter()
        await refresh_partitions(
            runtime.stores.partitions, CREATOR, size=settings.partition_size, now=time.time()
        )
        return time.perf_counter() - started
    finally:
        await runtime.close()


async def load_followers(runtime: Runtime, creator: UserId, count: int, report: Progress) -> None:
    """``count`` followers ``u000000000``… for ``creator``, in bulk (not timed)."""
    done = 0
    while done < count:
        size = min(_LOAD_CHUNK, count - done)
        ids = [UserId(f"u{i:09d}") for i in range(done, done + size)]
        await runtime.stores.followers.add(creator, ids)
        done += size
        report("loading followers", done, count)


async def _results(settings: Settings, event_id: EventId) -> tuple[Any, int, dict[str, Any]]:
    runtime: Runtime = open_runtime(settings)
    try:
        status = await runtime.stores.events.status(event_id)
        delivered = await runtime.stores.inbox.count_for_event(event_id)
        stages: dict[str, dict[str, float]] = {}
        for s in await runtime.stores.stats.all():
            entry = stages.setdefault(s.stage, {"busy_s": 0.0, "messages": 0, "items": 0})
            entry["busy_s"] = round(entry["busy_s"] + s.busy_s, 3)
            entry["messages"] += s.messages
            entry["items"] += s.items
        return status, delivered, stages
    finally:
        await runtime.close()
