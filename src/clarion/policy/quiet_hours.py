"""Quiet hours: is it quiet for this person now, and until when?

Windows are local wall-clock times in the person's IANA zone and may cross midnight
(22:00-08:00). The answer is computed from the zone's rules at the moment of evaluation,
so a window on a DST-change night is as long or short as the person's clock says it is.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONES: dict[str, ZoneInfo] = {}


def zone(name: str | None) -> ZoneInfo:
    """The zone named ``name`` (UTC when unknown or absent), built once per process:
    constructing ZoneInfo per recipient re-reads the zone file and is 20x slower."""
    key = name or "UTC"
    found = _ZONES.get(key)
    if found is None:
        try:
            found = ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError):
            found = ZoneInfo("UTC")
        _ZONES[key] = found
    return found


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    timezone: str | None = None
    """None: use the person's profile time zone, else UTC."""

    @classmethod
    def parse(cls, start: str, end: str, timezone: str | None = None) -> QuietHours:
        return cls(time.fromisoformat(start), time.fromisoformat(end), timezone)


def quiet_until(hours: QuietHours, now: float, fallback_zone: str | None = None) -> float | None:
    """When the window around ``now`` ends (a Unix time), or None if ``now`` is not quiet."""
    if hours.start == hours.end:
        return None
    name = hours.timezone or fallback_zone
    if _whole_minutes(hours):
        # Zone offsets and these ends are whole minutes, so every instant of one UTC minute
        # has the same answer: worked out once a minute per window and zone, not per batch
        # (a batch meets a hundred distinct windows; each costs tens of microseconds).
        return _in_minute(hours, name, int(now // 60))
    return _quiet_until(hours, now, zone(name))


def _whole_minutes(hours: QuietHours) -> bool:
    return not (hours.start.second or hours.start.microsecond) and not (
        hours.end.second or hours.end.microsecond
    )


@functools.lru_cache(maxsize=8192)
def _in_minute(hours: QuietHours, name: str | None, minute: int) -> float | None:
    return _quiet_until(hours, minute * 60.0, zone(name))


def _quiet_until(hours: QuietHours, now: float, tz: ZoneInfo) -> float | None:
    local = _local(now, tz)
    clock = local.time().replace(tzinfo=None)
    if hours.start < hours.end:
        if not hours.start <= clock < hours.end:
            return None
        end_day = local.date()
    else:
        if hours.end <= clock < hours.start:
            return None
        end_day = local.date() + timedelta(days=1) if clock >= hours.start else local.date()
    return at_wall_time(end_day, hours.end, tz)


@functools.lru_cache(maxsize=512)
def _local(now: float, tz: ZoneInfo) -> datetime:
    # A batch evaluates everyone at the same instant, so this is one conversion per zone
    # per batch rather than one per person.
    return datetime.fromtimestamp(now, tz)


def at_wall_time(day: date, wall: time, tz: ZoneInfo) -> float:
    """The Unix time of local ``day`` + ``wall`` in ``tz``. A wall time that does not exist
    (skipped by a spring-forward) resolves to the instant the clocks jumped past it."""
    moment = datetime.combine(day, wall, tzinfo=tz)
    there_and_back = moment.astimezone(UTC).astimezone(tz)
    if there_and_back.replace(tzinfo=None) == moment.replace(tzinfo=None):
        return moment.timestamp()
    # In a gap the two folds read the wall time with the old and the new offset; the jump
    # lies between them: find the first second whose local reading reaches ``wall``.
    wanted = moment.replace(tzinfo=None)
    low = int(moment.replace(fold=1).timestamp())
    high = int(moment.replace(fold=0).timestamp())
    low, high = min(low, high), max(low, high)
    while low < high:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= wanted:
            high = mid
        else:
            low = mid + 1
    return float(low)
