"""Preference evaluation of one large batch, in CPU milliseconds, warm and cold.

A population like a real one: 80% of recipients never touched their settings; the rest mix
quiet hours in zones around the world, frequency caps close to their limit (with recent
notifications on record), disabled types and channel choices. We time what evaluating a
batch costs — the bulk reads of preferences, profile zones and reachable channels, the
frequency-cap reservation, and every decision — but not the commit that records the
outcome (that is the fan-out benchmark's).

Warm: the same people again, whose documents the worker remembers (active people, who get
notified often). Cold: people this worker never evaluated, as in a fan-out to a new audience
— their documents are read from the database.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from clarion.config import Settings
from clarion.ids import new_event_id
from clarion.models import Channel, Priority
from clarion.pipeline.messages import EventHeader, RecipientBatch
from clarion.runtime import Runtime, open_runtime
from clarion.stores.records import UserProfile
from clarion.testing import evaluate_stage
from clarion.types import EventId, Seq, UserId

ZONES = (
    "America/New_York",
    "Europe/Paris",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Europe/London",
    "America/Sao_Paulo",
)
REPEATS = 5


@dataclass
class EvaluateReport:
    batch_size: int
    cpu_ms: float
    """Warm (see above): best of ``REPEATS``."""
    cold_cpu_ms: float
    """People never evaluated before: best of ``REPEATS`` disjoint sets of them."""
    wall_ms: float
    with_preferences: int
    outcomes: dict[str, int]
    sizes: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_evaluate(
    batch_size: int = 10_000, others: Sequence[int] = (1_000, 100_000)
) -> EvaluateReport:
    sizes = sorted({batch_size, *others})
    with tempfile.TemporaryDirectory(prefix="clarion-eval-") as scratch:
        return asyncio.run(_run(Settings(db=Path(scratch) / "eval.db"), batch_size, sizes))


async def _run(settings: Settings, main_size: int, sizes: list[int]) -> EvaluateReport:
    runtime = open_runtime(settings)
    try:
        # Enough people for the cold runs' disjoint sets after the warm one.
        people = max(*sizes, main_size * (REPEATS + 1))
        users = [UserId(f"user{i:07d}") for i in range(people)]
        with_prefs = await _population(runtime, users, random.Random(7))
        stage = evaluate_stage(runtime)
        timings: dict[str, float] = {}
        report: EvaluateReport | None = None
        for size in sizes:
            batch = _batch(users[:size])
            await stage.handle([[batch]])  # warm: caches filled, pages in memory
            cpu, wall, result = await _time(stage, batch)
            timings[str(size)] = round(cpu, 2)
            if size == main_size:
                outcomes = {"delivered": len(result[0].inbox)}
                for r in result:
                    for o in r.outcomes:
                        name = o.reason or o.outcome.value
                        outcomes[name] = outcomes.get(name, 0) + 1
                cold = [_batch(users[size * k : size * (k + 1)]) for k in range(1, REPEATS + 1)]
                report = EvaluateReport(
                    size,
                    round(cpu, 2),
                    round(min([await _once(stage, b) for b in cold]), 2),
                    round(wall, 2),
                    sum(1 for u in users[:size] if u in with_prefs),
                    outcomes,
                    timings,
                )
        assert report is not None
        report.sizes = timings
        return report
    finally:
        await runtime.close()


async def _time(stage: Any, batch: RecipientBatch) -> tuple[float, float, list[Any]]:
    best_cpu = best_wall = float("inf")
    results: list[Any] = []
    for _ in range(REPEATS):
        wall0 = time.perf_counter()
        cpu, result = await _evaluate(stage, batch)
        best_cpu = min(best_cpu, cpu)
        best_wall = min(best_wall, (time.perf_counter() - wall0) * 1000)
        results = [result]
    return best_cpu, best_wall, results


async def _once(stage: Any, batch: RecipientBatch) -> float:
    return (await _evaluate(stage, batch))[0]


async def _evaluate(stage: Any, batch: RecipientBatch) -> tuple[float, Any]:
    """CPU ms to evaluate ``batch`` (without recording the outcome), and the result."""
    from clarion.pipeline.evaluate import evaluate_batch

    cpu0 = time.process_time()
    context = await stage._context([batch])
    await stage._reserve([batch], context)  # frequency-cap places (taken once, then again)
    result, _ = evaluate_batch(batch, context)
    return (time.process_time() - cpu0) * 1000, result


def _batch(users: list[UserId]) -> RecipientBatch:
    now = time.time()
    header = EventHeader(
        Seq(1),
        EventId(new_event_id()),
        "new_post",
        Priority.P1,
        "bench",
        "star",
        "post_1",
        (Channel.PUSH, Channel.IN_APP),
        now,
        now + 3600,
        False,
    )
    return RecipientBatch(header, "0", users)


async def _population(runtime: Runtime, users: list[UserId], rng: random.Random) -> set[UserId]:
    """Give 20% of users a preference record; a realistic mix of what people set."""
    now = time.time()
    chosen = [u for u in users if rng.random() < 0.2]
    stamps: list[tuple[UserId, list[float]]] = []
    for user in chosen:
        doc: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.35:
            start = rng.randrange(20, 24)
            doc["quiet_hours"] = {
                "start": f"{start:02d}:00",
                "end": f"{rng.randrange(6, 9):02d}:00",
                "timezone": rng.choice(ZONES),
            }
        elif roll < 0.6:
            doc["frequency_caps"] = {"per_hour": 5, "per_day": 20}
            stamps.append(
                (user, [now - rng.randrange(60, 3000) for _ in range(rng.randrange(2, 6))])
            )
        elif roll < 0.8:
            doc["types"] = {"new_post": {"enabled": rng.random() < 0.5}}
        else:
            doc["channels"] = {"push": {"enabled": False}}
        await runtime.stores.preferences.put(user, doc, now, "bench")
        if rng.random() < 0.5:
            await runtime.stores.users.put(UserProfile(user, timezone=rng.choice(ZONES)))
    await _stamps(runtime, stamps)
    return set(chosen)


async def _stamps(runtime: Runtime, stamps: list[tuple[UserId, list[float]]]) -> None:
    """Places taken by earlier notifications (negative seqs: events this run never sends)."""
    rows = [
        (u, orjson.dumps([x for n, at in enumerate(times) for x in (-1 - n, at)]).decode())
        for u, times in stamps
    ]
    db = runtime._sqlite
    assert db is not None  # the benchmark runs on the embedded backend
    await db.write(lambda c: c.executemany("INSERT INTO frequency_places VALUES (?, ?)", rows))
