"""Digests (seed 004 §3.6 ``frequency: immediate | daily | weekly``): a person who asked for
a daily or weekly email gets one email per period, at a local hour, listing what came.

When a digest is due is a wall-clock question in the person's zone: daily at 08:00 (or
the hour they chose) every local day, weekly on Monday (or the day they chose). Across a
daylight-saving change the gap between two digests is 23 or 25 hours, as the person's
clock says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from clarion.policy.quiet_hours import at_wall_time, zone

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Every(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    every: Every
    at: time = time(8, 0)
    weekday: int = 0
    """0 is Monday (weekly digests only)."""

    @classmethod
    def parse(cls, every: str, at: str | None = None, day: str | None = None) -> DigestSchedule:
        return cls(
            Every(every),
            time.fromisoformat(at) if at else time(8, 0),
            WEEKDAYS.index(day) if day else 0,
        )


DAILY = DigestSchedule(Every.DAILY)
"""What a type's cap overflow goes to for someone who never asked for a digest."""


def next_due(schedule: DigestSchedule, zone_name: str | None, now: float) -> float:
    """The first digest time strictly after ``now`` (a Unix time)."""
    tz = zone(zone_name)
    today = datetime.fromtimestamp(now, tz).date()
    for offset in range(8 if schedule.every is Every.WEEKLY else 2):
        day = today + timedelta(days=offset)
        if schedule.every is Every.WEEKLY and day.weekday() != schedule.weekday:
            continue
        due = at_wall_time(day, schedule.at, tz)
        if due > now:
            return due
    raise AssertionError("a daily or weekly time always comes within eight days")
