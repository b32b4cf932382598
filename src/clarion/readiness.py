"""Is this Clarion ready for traffic? (``GET /v1/ready``.)

Ready means: the store answers, the queues answer, some worker checked in lately (a
worker writes a heartbeat every second), and no stage has a due message older than
``ready_stuck_s``. Each check has a short deadline, so an unreachable database makes the
answer "no, because …" in two seconds rather than a hung probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from clarion.runtime import Runtime

T = TypeVar("T")
DEADLINE_S = 2.0


@dataclass(slots=True)
class Readiness:
    problems: list[str] = field(default_factory=list)
    workers: int = 0
    """Workers that checked in within ``ready_worker_s``."""
    oldest_s: dict[str, float] = field(default_factory=dict)
    """Per topic with due work: how long its oldest message has waited."""

    @property
    def ready(self) -> bool:
        return not self.problems


class _UnreachableError(Exception):
    pass


async def _within(what: str, work: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(work, DEADLINE_S)
    except TimeoutError:
        raise _UnreachableError(f"{what} did not answer within {DEADLINE_S:g} s") from None
    except Exception as exc:  # any failure to answer is the reason, said plainly
        raise _UnreachableError(
            f"{what} cannot be reached: {str(exc) or type(exc).__name__}"
        ) from None


async def check(runtime: Runtime) -> Readiness:
    settings, now = runtime.settings, runtime.clock.now()
    found = Readiness()
    try:
        beats = await _within("the database", runtime.stores.stats.beats())
    except _UnreachableError as exc:
        found.problems.append(str(exc))
    else:
        found.workers = sum(1 for at in beats.values() if now - at <= settings.ready_worker_s)
        if not found.workers:
            found.problems.append(
                f"no worker has checked in for {settings.ready_worker_s:g} s"
                " (start `clarion worker`, or `clarion serve` with --workers)"
            )
    try:
        oldest = await _within("the queues", runtime.broker.oldest(now))
    except _UnreachableError as exc:
        found.problems.append(str(exc))
    else:
        found.oldest_s = {topic: max(now - at, 0.0) for topic, at in sorted(oldest.items())}
        stuck = [(t, age) for t, age in found.oldest_s.items() if age > settings.ready_stuck_s]
        found.problems += [f"{topic} has waited {age:,.0f} s" for topic, age in stuck]
    return found
