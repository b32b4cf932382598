"""Quiet hours in the person's zone, across midnight and across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clarion.policy.quiet_hours import QuietHours, quiet_until


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


NIGHT_NY = QuietHours.parse("22:00", "08:00", "America/New_York")


def test_a_daytime_window() -> None:
    lunch = QuietHours.parse("12:00", "13:30", "UTC")
    assert quiet_until(lunch, utc(2026, 6, 1, 11, 59)) is None
    assert quiet_until(lunch, utc(2026, 6, 1, 12, 0)) == utc(2026, 6, 1, 13, 30)
    assert quiet_until(lunch, utc(2026, 6, 1, 13, 30)) is None


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (utc(2026, 6, 2, 2, 0), utc(2026, 6, 2, 12, 0)),  # 22:00 EDT: window opens
        (utc(2026, 6, 2, 5, 30), utc(2026, 6, 2, 12, 0)),  # 01:30 EDT, after midnight
        (utc(2026, 6, 2, 11, 59), utc(2026, 6, 2, 12, 0)),  # 07:59 EDT
        (utc(2026, 6, 2, 12, 0), None),  # 08:00 EDT: over
        (utc(2026, 6, 2, 1, 59), None),  # 21:59 EDT: not yet
    ],
)
def test_a_window_across_midnight(now: float, until: float | None) -> None:
    assert quiet_until(NIGHT_NY, now) == until


def test_spring_forward_night_is_an_hour_shorter() -> None:
    # 2026-03-08: New York clocks jump 02:00 EST -> 03:00 EDT.
    start = utc(2026, 3, 8, 3, 0)  # 22:00 EST on the 7th
    assert quiet_until(NIGHT_NY, start) == utc(2026, 3, 8, 12, 0)  # 08:00 EDT: 9 h later


def test_fall_back_night_is_an_hour_longer() -> None:
    # 2026-11-01: clocks fall back 02:00 EDT -> 01:00 EST.
    start = utc(2026, 11, 1, 2, 0)  # 22:00 EDT on Oct 31
    assert quiet_until(NIGHT_NY, start) == utc(2026, 11, 1, 13, 0)  # 08:00 EST: 11 h later
    second_one_thirty = utc(2026, 11, 1, 6, 30)  # 01:30 EST, the repeated hour
    assert quiet_until(NIGHT_NY, second_one_thirty) == utc(2026, 11, 1, 13, 0)


def test_an_end_time_that_does_not_exist_that_night() -> None:
    # 02:30 never happens on 2026-03-08 in New York; the window ends when clocks jump.
    short = QuietHours.parse("23:00", "02:30", "America/New_York")
    assert quiet_until(short, utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 7, 0)


def test_zone_comes_from_the_profile_when_not_given() -> None:
    night = QuietHours.parse("22:00", "08:00")
    tokyo_midnight = utc(2026, 6, 1, 15, 0)
    assert quiet_until(night, tokyo_midnight, "Asia/Tokyo") == utc(2026, 6, 1, 23, 0)
    assert quiet_until(night, tokyo_midnight) is None  # UTC: 15:00 is daytime


def test_the_answer_worked_out_once_a_minute_is_the_answer_at_every_second() -> None:
    """``quiet_until`` remembers one answer per UTC minute; check it against the direct
    computation at many instants, at both edges of minutes, across a DST change and in
    zones with half- and three-quarter-hour offsets."""
    import random

    from clarion.policy.quiet_hours import _quiet_until, zone

    rng = random.Random(3)
    zones = ["Europe/Paris", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", None]
    spring = datetime(2026, 3, 29, 0, 0, tzinfo=UTC).timestamp()  # Europe springs forward
    for _ in range(3000):
        hours = QuietHours.parse(
            f"{rng.randrange(24):02d}:{rng.choice((0, 15, 30, 59)):02d}",
            f"{rng.randrange(24):02d}:{rng.choice((0, 1, 30, 45)):02d}",
            rng.choice(zones),
        )
        minute = int(spring // 60) + rng.randrange(-3000, 3000)
        for now in (minute * 60.0, minute * 60 + 59.999, minute * 60 + rng.random() * 60):
            direct = (
                None if hours.start == hours.end else _quiet_until(hours, now, zone(hours.timezone))
            )
            assert quiet_until(hours, now) == direct, (hours, now)
