"""Aggregation under a flood: likes on photos, through the batch API, with push on.

1,000 people own 10,000 photos (ten each) and have an iPhone each; likes from many fans
arrive in batches of 1,000 events, several requests in flight, with worker processes
running. We time the first 202 to the last inbox update (every like counted on its
photo's one inbox entry), then wait for the last windows to close and count the pushes the
APNs look-alike received: the first of each window, and one summary — the compression.

What the figure leaves out: the look-alikes run on the same two cores (in their own
process), and so does the load generator; likes are spread evenly over the photos, so
every key sees many windows (a real flood concentrates on a few).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from clarion.bench.driver import Progress, fake_providers_process, lookalike_control
from clarion.bench.h2raw import apns_config, device_token
from clarion.channels import apns
from clarion.channels.config import stored
from clarion.config import Settings
from clarion.errors import BackendError
from clarion.keys import create_key
from clarion.launch import LocalClarion, peak_rss_mb
from clarion.models import Channel, Platform, Priority, TypeSpec
from clarion.runtime import open_runtime
from clarion.stores.records import Device
from clarion.supervisor import standard_workers
from clarion.types import UserId

OWNERS = 1_000
PHOTOS_EACH = 10
BATCH = 1_000


@dataclass
class AggregateReport:
    events: int
    seconds: float
    events_per_s: float
    keys: int
    windows: int
    pushes: int
    pushes_per_key_window: float
    compression: float
    """Events per push."""
    window_s: float
    workers: int
    peak_rss_mb: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_aggregate(
    events: int = 1_000_000,
    *,
    window_s: float = 30.0,
    workers: int = 2,
    concurrency: int = 8,
    progress: Progress | None = None,
) -> AggregateReport:
    report = progress or (lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="clarion-aggregate-") as scratch:
        folder = Path(scratch)
        with fake_providers_process(folder) as config:
            settings = Settings(db=folder / "aggregate.db", allow_private_targets=True)
            key = asyncio.run(_prepare(settings, config, window_s, report))
            with LocalClarion(settings, standard_workers(workers, 0)) as local:
                first_202 = asyncio.run(_flood(local.url, key, events, concurrency, report))
                last_update = _wait_counted(settings, events, report)
                report("closing the last windows", 0, None)
                time.sleep(window_s + 3.0)  # the summaries of the last windows go out
                rss = peak_rss_mb(list(local.pids().values()))
            pushes = _pushes(config)
            keys, windows = asyncio.run(_windows(settings))
    seconds = last_update - first_202
    return AggregateReport(
        events=events,
        seconds=round(seconds, 2),
        events_per_s=round(events / seconds),
        keys=keys,
        windows=windows,
        pushes=pushes,
        pushes_per_key_window=round(pushes / max(windows, 1), 3),
        compression=round(events / max(pushes, 1), 1),
        window_s=window_s,
        workers=workers,
        peak_rss_mb=round(rss),
    )


async def _prepare(
    settings: Settings, config: dict[str, Any], window_s: float, report: Progress
) -> str:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        like = TypeSpec(
            "like", Priority.P1, (Channel.PUSH, Channel.IN_APP), 3600, aggregate_s=int(window_s)
        )
        await runtime.stores.types.put(like, now)
        parsed = apns_config(config["apns"])
        await runtime.stores.providers.put("apns", stored(parsed), now)
        issued = int(time.time())
        token = apns.provider_token(parsed, issued)
        await runtime.stores.provider_tokens.replace("apns", token, issued, expected=None)
        for i in range(OWNERS):
            phone = Device(
                _owner(i), "phone", Platform.IOS, device_token(i), registered_at=now, last_seen=now
            )
            await runtime.stores.devices.register(phone, max_per_user=5)
            if (i + 1) % 100 == 0:
                report("owners and their phones", i + 1, OWNERS)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="bench", admin=True)
        return secret
    finally:
        await runtime.close()


def _owner(i: int) -> UserId:
    return UserId(f"owner{i:05d}")


async def _flood(url: str, key: str, events: int, concurrency: int, report: Progress) -> float:
    """Send the likes, ``concurrency`` batches in flight; returns when the first was
    accepted. Events the API sheds (429 while evaluation is behind) are sent again after a
    second, as a producer would: a repeat of an accepted one is answered as a duplicate,
    never counted twice. Every like is its own event (a like id in its payload)."""
    photos = OWNERS * PHOTOS_EACH
    requests = -(-events // BATCH)
    first: list[float] = []
    done = [0]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)

    def body(n: int) -> bytes:
        rng = random.Random(n)  # the same likes whenever batch n is sent again
        likes = []
        for i in range(min(BATCH, events - n * BATCH)):
            photo = rng.randrange(photos)
            likes.append(
                {
                    "type": "like",
                    "target": _owner(photo % OWNERS),
                    "actor": f"fan{rng.randrange(1_000_000)}",
                    "object": f"photo{photo}",
                    "payload": {"like": n * BATCH + i},
                }
            )
        return orjson.dumps({"events": likes})

    async def sender(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            answer = await client.post("/v1/notifications/batch", content=body(n))
            results = answer.json()["results"] if answer.status_code == 200 else []
            if answer.status_code != 200 or any(r["status"] == 429 for r in results):
                await asyncio.sleep(1.0)
                queue.put_nowait(n)
                continue
            if not first:
                first.append(time.time())
            done[0] += len(results)
            report("likes accepted", done[0], events)

    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))
    if done[0] != events:
        raise BackendError(f"{events - done[0]} of {events} likes were not accepted")
    return first[0]


def _wait_counted(settings: Settings, events: int, report: Progress) -> float:
    """Until every like is counted on an inbox entry; returns the last entry's update time."""
    deadline = time.monotonic() + 1800
    while True:
        counted, last = asyncio.run(_counted(settings))
        report("likes counted in the inbox", counted, events)
        if counted >= events:
            return last
        if time.monotonic() > deadline:
            raise BackendError(f"only {counted} of {events} likes were counted")
        time.sleep(0.5)


async def _counted(settings: Settings) -> tuple[int, float]:
    runtime = open_runtime(settings)
    try:
        db = runtime._sqlite
        assert db is not None  # the benchmark runs on the embedded backend
        row = await db.read(
            lambda c: c.execute(
                "SELECT coalesce(sum(coalesce(aggregate ->> 0, 1)), 0),"
                " max(coalesce(aggregate ->> 2, 0)) FROM inbox"
            ).fetchone()
        )
        return int(row[0]), float(row[1] or 0.0)
    finally:
        await runtime.close()


async def _windows(settings: Settings) -> tuple[int, int]:
    """Keys, and the windows they opened (each may send a first and one summary)."""
    runtime = open_runtime(settings)
    try:
        db = runtime._sqlite
        assert db is not None
        row = await db.read(
            lambda c: c.execute(
                "SELECT count(*), coalesce(sum(state ->> 'window'), 0) FROM aggregates"
            ).fetchone()
        )
        return int(row[0]), int(row[1])
    finally:
        await runtime.close()


def _pushes(config: dict[str, Any]) -> int:
    control = lookalike_control(config)
    with control:
        return int(control.get("/_control/apns/received", params={"count": 1}).json()["count"])
