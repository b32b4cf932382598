"""Cron expressions in a person's or a product's time zone (croniter), DST-correct: a
daily 09:00 stays 09:00 local when the clocks change, so it moves by an hour in UTC."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from croniter import croniter

from clarion.validation import is_time_zone


def problems(expression: str, zone: str) -> list[tuple[str, str]]:
    """(field, reason) for a cron expression or a zone that will not do."""
    found = []
    if not croniter.is_valid(expression):
        found.append(("cron", f"{expression!r} is not a cron expression (e.g. '0 9 * * mon-fri')"))
    if not is_time_zone(zone):
        found.append(("timezone", f"{zone!r} is not an IANA time zone (e.g. 'Europe/Paris')"))
    return found


def next_after(expression: str, zone: str, after: float) -> float:
    """The first run strictly after ``after``. A local time the clocks go back through
    (02:30 on the autumn night) runs once, not twice; one they skip (02:30 in spring)
    runs when the clocks have jumped, at 03:00."""
    tz = ZoneInfo(zone)
    start = dt.datetime.fromtimestamp(after, tz)
    runs = croniter(expression, start)
    found: dt.datetime = runs.get_next(dt.datetime)
    while found.replace(tzinfo=None) == start.replace(tzinfo=None):
        found = runs.get_next(dt.datetime)  # the repeated hour's second pass
    return found.timestamp()


def latest_by(expression: str, zone: str, at: float) -> float:
    """The last run at or before ``at`` (what a scheduler that was down owes, once)."""
    start = dt.datetime.fromtimestamp(at + 1, ZoneInfo(zone))
    found: dt.datetime = croniter(expression, start).get_prev(dt.datetime)
    return found.timestamp()
