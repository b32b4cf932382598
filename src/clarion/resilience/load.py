"""The load level: how much work is queued, and so what to refuse or slow down.

The signal is the backlog — batches waiting for evaluation or for a channel (fan-out
tasks are small; what they are about to produce shows up downstream soon enough):

* ``normal``;
* ``shed_p2`` from ``load_shed_p2`` queued batches: ingest answers 429 to P2 events, and
  while more urgent work is queued, workers take P2 at half pace;
* ``shed_p1`` from ``load_shed_p1``: P1 is refused at ingest too, P2 waits for quiet
  moments, P1 runs at half pace.

P0 is never refused and never slowed: transactional codes are the reason the system
exists. Fan-out has its own brake (``fanout_pause_depth``): it stops producing batches
while its priority's evaluation queue is that deep, so a celebrity post cannot flood it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from clarion.models import Priority
from clarion.topics import EVALUATE, FANOUT, STATUS, priority_of

CACHE_S = 1.0
"""Every process re-reads the queue depths at most this often."""

log = logging.getLogger(__name__)


class LoadLevel(StrEnum):
    NORMAL = "normal"
    SHED_P2 = "shed_p2"
    SHED_P1 = "shed_p1"


@dataclass(frozen=True, slots=True)
class Load:
    level: LoadLevel
    backlog: int
    by_priority: dict[Priority, int] = field(default_factory=dict)
    depths: dict[str, int] = field(default_factory=dict)

    def refuses(self, priority: Priority) -> bool:
        """Whether ingest turns away an event of ``priority`` now."""
        if priority is Priority.P2:
            return self.level is not LoadLevel.NORMAL
        return priority is Priority.P1 and self.level is LoadLevel.SHED_P1

    def pace(self, priority: Priority) -> float:
        """Share of a worker's time ``priority`` may take (1.0: no brake).

        Only while more urgent work is queued: a P2 campaign alone runs at full speed."""
        urgent = sum(n for p, n in self.by_priority.items() if p.rank < priority.rank)
        if priority is Priority.P0 or not urgent or self.level is LoadLevel.NORMAL:
            return 1.0
        if priority is Priority.P1:
            return 0.5 if self.level is LoadLevel.SHED_P1 else 1.0
        return 0.25 if self.level is LoadLevel.SHED_P1 else 0.5


def measure(depths: Mapping[str, int], *, shed_p2: int, shed_p1: int) -> Load:
    by_priority = dict.fromkeys(Priority, 0)
    for name, count in depths.items():
        if name.partition(".")[0] in (FANOUT, STATUS):
            continue
        by_priority[priority_of(name)] += count
    backlog = sum(by_priority.values())
    level = LoadLevel.NORMAL
    if backlog >= shed_p1:
        level = LoadLevel.SHED_P1
    elif backlog >= shed_p2:
        level = LoadLevel.SHED_P2
    return Load(level, backlog, by_priority, dict(depths))


def evaluation_depth(load: Load, priority: Priority) -> int:
    return load.depths.get(f"{EVALUATE}.{priority.value.lower()}", 0)


class LoadMonitor:
    """The current load, re-measured at most every ``CACHE_S`` seconds."""

    def __init__(
        self,
        depths: Callable[[], Awaitable[dict[str, int]]],
        monotonic: Callable[[], float],
        *,
        shed_p2: int,
        shed_p1: int,
    ) -> None:
        self._depths = depths
        self._monotonic = monotonic
        self._shed_p2 = shed_p2
        self._shed_p1 = shed_p1
        self._load: Load | None = None
        self._at = 0.0

    async def current(self) -> Load:
        now = self._monotonic()
        if self._load is None or now - self._at >= CACHE_S:
            self._at = now
            try:
                depths = await self._depths()
            except Exception as exc:
                # The reading is advisory. When the broker cannot answer (Redis restarting),
                # keep the last one: ingest commits to the store's outbox and carries on.
                log.warning("queue depths unavailable (%s); keeping the last load reading", exc)
                return self._load or Load(LoadLevel.NORMAL, 0)
            self._load = measure(depths, shed_p2=self._shed_p2, shed_p1=self._shed_p1)
        return self._load
