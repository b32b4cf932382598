"""The evaluation rule, rule by rule and in order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from clarion.models import Channel, Outcome, Priority
from clarion.policy.decide import Notice, Reason, Verdict, decide
from clarion.policy.frequency import check
from clarion.policy.preferences import DEFAULT, Preferences

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 6, 1, 23, 30, tzinfo=UTC).timestamp()
CHANNELS = (Channel.PUSH, Channel.IN_APP)


def notice(priority: Priority = Priority.P1, **kw: Any) -> Notice:
    fields: dict[str, Any] = {
        "type": "like",
        "priority": priority,
        "mandatory": False,
        "default_enabled": True,
        "channels": CHANNELS,
    } | kw
    return Notice(**fields)


def prefs(**doc: Any) -> Preferences:
    return Preferences.from_doc(doc)


def verdict(p: Preferences, n: Notice, now: float = NOON, **kw: Any) -> Verdict:
    return decide(p, n, now=now, **kw)


QUIET = {"quiet_hours": {"start": "23:00", "end": "07:00", "timezone": "UTC"}}


def test_defaults_deliver_on_the_type_channels() -> None:
    result = verdict(DEFAULT, notice())
    assert (result.outcome, result.channels) == (Outcome.DELIVERED, CHANNELS)


def test_a_type_off_by_default_needs_an_opt_in() -> None:
    marketing = notice(Priority.P2, default_enabled=False)
    assert verdict(DEFAULT, marketing).reason is Reason.DISABLED_TYPE
    assert verdict(prefs(types={"like": {"enabled": True}}), marketing).deliver


def test_master_switch_off_suppresses_p1_and_p2_but_not_p0_or_mandatory() -> None:
    off = prefs(enabled=False)
    assert verdict(off, notice(Priority.P1)).reason is Reason.MASTER_OFF
    assert verdict(off, notice(Priority.P2)).reason is Reason.MASTER_OFF
    assert verdict(off, notice(Priority.P0)).deliver
    assert verdict(off, notice(mandatory=True)).deliver


def test_a_disabled_type_suppresses_unless_mandatory() -> None:
    no_likes = prefs(types={"like": {"enabled": False}})
    assert verdict(no_likes, notice(Priority.P0)).reason is Reason.DISABLED_TYPE
    assert verdict(no_likes, notice(mandatory=True)).deliver
    assert verdict(prefs(types={"comment": {"enabled": False}}), notice()).deliver


def test_quiet_hours_hold_p1_drop_p2_and_let_p0_through() -> None:
    quiet = prefs(**QUIET)
    held = verdict(quiet, notice(Priority.P1), MIDNIGHT)
    assert (held.outcome, held.reason) == (Outcome.HELD, Reason.HELD_QUIET_HOURS)
    assert held.hold_until == datetime(2026, 6, 2, 7, 0, tzinfo=UTC).timestamp()
    assert verdict(quiet, notice(Priority.P2), MIDNIGHT).reason is Reason.QUIET_HOURS_DROPPED
    assert verdict(quiet, notice(Priority.P0), MIDNIGHT).deliver
    assert verdict(quiet, notice(Priority.P1), NOON).deliver


@pytest.mark.parametrize(
    ("priority", "stamps", "outcome"),
    [
        (Priority.P1, [NOON - 60] * 2, Outcome.HELD),  # over the hourly cap: waits
        (Priority.P2, [NOON - 60] * 2, Outcome.SUPPRESSED),  # over the hourly cap: dropped
        (Priority.P1, [NOON - 7200] * 5, Outcome.SUPPRESSED),  # over the daily cap
        (Priority.P0, [NOON - 60] * 9, Outcome.DELIVERED),  # never capped
        (Priority.P1, [NOON - 60], Outcome.DELIVERED),  # under both
    ],
)
def test_frequency_caps(priority: Priority, stamps: list[float], outcome: Outcome) -> None:
    capped = prefs(frequency_caps={"per_hour": 2, "per_day": 5})
    caps = capped.caps
    assert caps is not None
    result = verdict(capped, notice(priority), cap=check(caps, stamps, NOON))
    assert result.outcome is outcome
    if outcome is not Outcome.DELIVERED:
        assert result.reason is Reason.FREQ_CAP
    if outcome is Outcome.HELD:
        assert result.hold_until == NOON - 60 + 3600


def test_channels_are_narrowed_by_type_and_channel_choices() -> None:
    only_push = prefs(types={"like": {"channels": ["push"]}})
    assert verdict(only_push, notice()).channels == (Channel.PUSH,)
    no_push = prefs(channels={"push": {"enabled": False}})
    assert verdict(no_push, notice()).channels == (Channel.IN_APP,)
    nothing = prefs(types={"like": {"channels": ["email"]}})
    assert verdict(nothing, notice()).reason is Reason.NO_CHANNEL
    assert verdict(nothing, notice(mandatory=True)).channels == CHANNELS
