"""Ingest throughput: accepted (durably enqueued) events per second through the HTTP API.

A lean load generator (``bench.loadgen``, many requests in flight) posts direct events,
one per request or in batches, to a real server whose workers are running, for a fixed
time. Only 202s count.
Afterwards the database is asked how many events it holds, so the figure is events that
were really stored, not responses the client happened to see.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from clarion.bench.backends import owned_backends
from clarion.bench.loadgen import post_for
from clarion.config import Settings
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.models import Channel, Priority, TypeSpec
from clarion.runtime import open_runtime
from clarion.supervisor import standard_workers


@dataclass
class IngestReport:
    mode: str
    seconds: float
    requests: int
    accepted_events: int
    events_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    concurrency: int
    workers: int
    api_processes: int
    stored_events: int
    broker: str = "sqlite"
    store: str = "sqlite"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_ingest(
    *,
    seconds: float = 10.0,
    concurrency: int = 64,
    batch: int = 0,
    workers: int = 2,
    api_processes: int = 1,
    broker: str | None = None,
    store: str | None = None,
) -> IngestReport:
    with (
        owned_backends(broker, store),
        tempfile.TemporaryDirectory(prefix="clarion-ingest-") as scratch,
    ):
        settings = Settings(db=Path(scratch) / "ingest.db", broker=broker, store=store)
        key = asyncio.run(_prepare(settings))
        local = LocalClarion(settings, standard_workers(workers, 0), api_processes=api_processes)
        with local:
            latencies, accepted, errors, elapsed = asyncio.run(
                _load(local.url, key, seconds, concurrency, batch)
            )
        stored = asyncio.run(_stored(settings))
    ordered = sorted(latencies) or [0.0]
    return IngestReport(
        mode=f"batch of {batch}" if batch else "single",
        seconds=round(elapsed, 2),
        requests=len(latencies),
        accepted_events=accepted,
        events_per_s=round(accepted / elapsed),
        p50_ms=round(statistics.median(ordered) * 1000, 2),
        p99_ms=round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
        errors=errors,
        concurrency=concurrency,
        workers=workers,
        api_processes=api_processes,
        stored_events=stored,
        broker="redis" if broker else "sqlite",
        store="postgresql" if store else "sqlite",
    )


async def _prepare(settings: Settings) -> str:
    runtime = open_runtime(settings)
    try:
        await runtime.stores.types.put(
            TypeSpec("ping", Priority.P1, (Channel.IN_APP,)), runtime.clock.now()
        )
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="load")
        return secret
    finally:
        await runtime.close()


async def _stored(settings: Settings) -> int:
    runtime = open_runtime(settings)
    try:
        return await runtime.stores.events.count()
    finally:
        await runtime.close()


async def _load(
    url: str, key: str, seconds: float, concurrency: int, batch: int
) -> tuple[list[float], int, int, float]:
    headers = {"Authorization": f"Bearer {key}"}
    if batch:
        result = await post_for(
            url,
            "/v1/notifications/batch",
            headers,
            functools.partial(_batch_body, size=batch),
            seconds=seconds,
            connections=concurrency,
            keep_bodies=True,
        )
        accepted = sum(int(orjson.loads(b)["accepted"]) for b in result.bodies if b)
    else:
        result = await post_for(
            url,
            "/v1/notifications",
            headers,
            _single_body,
            seconds=seconds,
            connections=concurrency,
        )
        accepted = sum(1 for status in result.statuses if status == 202)
    errors = sum(1 for status in result.statuses if status not in (200, 202))
    return result.latencies, accepted, errors, result.elapsed


def _single_body(n: int) -> bytes:
    return orjson.dumps({"type": "ping", "target": f"user{n % 100_000}", "object": f"o{n}"})


def _batch_body(n: int, *, size: int) -> bytes:
    events = [
        {"type": "ping", "target": f"user{(n * size + i) % 100_000}", "object": f"o{n}-{i}"}
        for i in range(size)
    ]
    return orjson.dumps({"events": events})
