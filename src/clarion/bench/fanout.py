"""A celebrity fan-out on the embedded backend, timed from the 202.

Followers are bulk-loaded first (not timed). Then one ``followers`` event goes through the
real API to real worker processes; we report the time from the 202 to the first inbox
entry and to the last, recipients per second, the peak memory of every process, where the
workers spent their time, and the raw SQLite insert rate measured in the same run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clarion.bench.raw import sqlite_insert_rows_per_s
from clarion.config import Settings
from clarion.errors import BackendError
from clarion.keys import create_key
from clarion.launch import LocalClarion, peak_rss_mb
from clarion.models import Channel, Priority, TypeSpec
from clarion.runtime import Runtime, open_runtime
from clarion.supervisor import standard_workers
from clarion.types import EventId, UserId

CREATOR = UserId("celebrity")
_LOAD_CHUNK = 100_000

Progress = Callable[[str, int, int | None], None]
"""``(phase, done, total)``: called as the benchmark advances."""


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
    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_fanout(
    followers: int,
    *,
    workers: int = 2,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> FanoutReport:
    report = progress or (lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-") as scratch:
        settings = Settings(db=Path(scratch) / "bench.db", batch_size=batch_size)
        key = asyncio.run(_prepare(settings, followers, report))
        with LocalClarion(settings, standard_workers(workers, 0)) as local:
            accepted_at, event_id = _send(local.url, key)
            _wait(local.url, key, event_id, followers, report)
            rss = peak_rss_mb(list(local.pids().values()))
        status, delivered, stages = asyncio.run(_results(settings, event_id))
    report("raw sqlite insert rate", 0, None)
    raw = sqlite_insert_rows_per_s()
    first = (status.first_delivery_at or accepted_at) - accepted_at
    total = (status.completed_at or time.time()) - accepted_at
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
        stages=stages,
    )


async def _prepare(settings: Settings, followers: int, report: Progress) -> str:
    runtime = open_runtime(settings)
    try:
        await runtime.stores.types.put(
            TypeSpec("new_post", Priority.P1, (Channel.IN_APP,), 3600), runtime.clock.now()
        )
        done = 0
        while done < followers:
            size = min(_LOAD_CHUNK, followers - done)
            ids = [UserId(f"u{i:09d}") for i in range(done, done + size)]
            await runtime.stores.followers.add(CREATOR, ids)
            done += size
            report("loading followers", done, followers)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="bench", admin=True)
        return secret
    finally:
        await runtime.close()


def _send(url: str, key: str) -> tuple[float, EventId]:
    response = httpx.post(
        f"{url}/v1/notifications",
        headers={"Authorization": f"Bearer {key}"},
        json={"type": "new_post", "actor": CREATOR, "fan_out": "followers", "object": "post_1"},
        timeout=30,
    )
    accepted_at = time.time()
    if response.status_code != 202:
        raise BackendError(f"event refused: {response.status_code} {response.text}")
    return accepted_at, EventId(response.json()["event_id"])


def _wait(url: str, key: str, event_id: EventId, followers: int, report: Progress) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
        while True:
            status = api.get(f"/v1/notifications/{event_id}").json()
            report("delivering", status["delivered"] + status["suppressed"], followers)
            if status["state"] in ("completed", "failed"):
                return
            time.sleep(0.02)


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
