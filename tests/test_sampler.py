"""The dashboard's series: rates and the P0 p99 of each interval, from the differences
between the notes taken every ten seconds."""

from __future__ import annotations

import pytest

from clarion import metrics
from clarion.clock import ManualClock
from clarion.web.sampler import Sampler

INF = float("inf")


def test_each_interval_has_its_rates_and_p0_p99(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    notes = iter(
        [
            metrics.Totals(100, 1_000, ((0.1, 10), (1.0, 10), (INF, 10))),
            metrics.Totals(300, 3_000, ((0.1, 110), (1.0, 110), (INF, 110))),
            metrics.Totals(300, 3_500, ((0.1, 110), (1.0, 200), (INF, 210))),
        ]
    )
    monkeypatch.setattr(metrics, "totals", lambda: next(notes))
    seen = Sampler(clock)
    for _ in range(3):
        seen.note()
        clock.advance(10)
    first, second = seen.series()
    assert (first["accepted_per_s"], first["delivered_per_s"]) == (20.0, 200.0)
    assert first["p0_p99_s"] == 0.1  # a hundred P0 deliveries, all within 0.1 s
    assert (second["accepted_per_s"], second["delivered_per_s"]) == (0.0, 50.0)
    assert second["p0_p99_s"] == 1.0  # ten of a hundred past the top bucket: the last finite
