"""The dashboard's last fifteen minutes: every ten seconds the API process notes the
counted totals (``metrics.totals``); rates and the P0 latency of each interval come from
the differences between notes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
from dataclasses import dataclass
from typing import Any

from clarion import metrics
from clarion.clock import Clock

log = logging.getLogger(__name__)
EVERY_S = 10.0
KEPT = 91
"""Fifteen minutes of notes, and the one before them."""


@dataclass(frozen=True, slots=True)
class Note:
    at: float
    totals: metrics.Totals


class Sampler:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._notes: collections.deque[Note] = collections.deque(maxlen=KEPT)

    def note(self) -> None:
        self._notes.append(Note(self._clock.now(), metrics.totals()))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.note()
            except Exception:  # the dashboard's charts must not take the API down
                log.exception("dashboard sampler: could not read the metrics")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), EVERY_S)

    def series(self) -> list[dict[str, Any]]:
        """Per interval: when it ended, events accepted and deliveries per second, and the
        P0 deliveries' p99 (from the histogram's buckets; None when there were none)."""
        notes = list(self._notes)
        points = []
        for before, after in itertools.pairwise(notes):
            span = after.at - before.at
            if span <= 0:
                continue
            points.append(
                {
                    "at": after.at,
                    "accepted_per_s": (after.totals.accepted - before.totals.accepted) / span,
                    "delivered_per_s": (after.totals.delivered - before.totals.delivered) / span,
                    "p0_p99_s": _p99(before.totals.p0_buckets, after.totals.p0_buckets),
                }
            )
        return points


def _p99(
    before: tuple[tuple[float, float], ...], after: tuple[tuple[float, float], ...]
) -> float | None:
    earlier = dict(before)
    counts = [(bound, n - earlier.get(bound, 0.0)) for bound, n in after]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return None
    finite = [bound for bound, _ in counts if bound != float("inf")]
    for bound, n in counts:
        if n >= 0.99 * total:
            return bound if bound != float("inf") else finite[-1]  # "over the top bucket"
    return None
