"""Frequency caps: rolling hourly and daily limits on how many notifications a person gets.

Counts are exact rolling windows over the timestamps of the person's recent notifications
(the store keeps the last day's, bounded by the cap), so "10 an hour" means no 11th within
any sixty minutes, and a delayed notification is released the moment the oldest one in the
window turns an hour old.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HOUR_S = 3600.0
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class FrequencyCaps:
    per_hour: int | None = None
    per_day: int | None = None

    @property
    def keep(self) -> int:
        """How many recent timestamps decide both windows."""
        return max(self.per_hour or 0, self.per_day or 0)


@dataclass(frozen=True, slots=True)
class CapCheck:
    over_hour: bool = False
    over_day: bool = False
    hour_frees_at: float | None = None
    """When the hourly count next drops below the cap (for delaying P1)."""


UNDER = CapCheck()


def check(caps: FrequencyCaps, stamps: Sequence[float], now: float) -> CapCheck:
    """Would one more notification now break a cap? ``stamps`` are past notification times."""
    day = sorted(s for s in stamps if s > now - DAY_S)
    over_day = caps.per_day is not None and len(day) >= caps.per_day
    over_hour = False
    frees_at = None
    if caps.per_hour is not None:
        hour = [s for s in day if s > now - HOUR_S]
        if len(hour) >= caps.per_hour:
            over_hour = True
            frees_at = hour[len(hour) - caps.per_hour] + HOUR_S
    if not (over_day or over_hour):
        return UNDER
    return CapCheck(over_hour, over_day, frees_at)
