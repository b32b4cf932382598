"""The evaluation rule for one recipient of one event, in seed 001's order:

    kill switch → TTL → master switch → type → quiet hours → frequency caps → channels

P0 and mandatory types bypass the master switch; P0 also bypasses quiet hours and caps (and
still counts toward them). A mandatory type cannot be switched off, and if a person's
channel choices leave it nowhere to go it uses the type's own channels. Quiet hours hold P1
until the window ends and drop P2; over the hourly cap P1 waits and P2 is dropped; over
the daily cap both are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from clarion.models import Channel, Outcome, Priority
from clarion.policy.frequency import UNDER, CapCheck
from clarion.policy.preferences import Preferences
from clarion.policy.quiet_hours import quiet_until


class Reason(StrEnum):
    KILLED = "killed"
    EXPIRED = "expired"
    MASTER_OFF = "master_off"
    DISABLED_TYPE = "disabled_type"
    QUIET_HOURS_DROPPED = "quiet_hours_dropped"
    HELD_QUIET_HOURS = "held_quiet_hours"
    FREQ_CAP = "freq_cap"
    NO_CHANNEL = "no_channel"


@dataclass(frozen=True, slots=True)
class Notice:
    """What an evaluation needs to know about the event, decided once per batch."""

    type: str
    priority: Priority
    mandatory: bool
    default_enabled: bool
    channels: tuple[Channel, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: Reason | None = None
    channels: tuple[Channel, ...] = ()
    hold_until: float | None = None

    @property
    def deliver(self) -> bool:
        return self.outcome is Outcome.DELIVERED


def suppressed(reason: Reason) -> Verdict:
    return Verdict(Outcome.SUPPRESSED, reason)


def decide(
    prefs: Preferences,
    notice: Notice,
    *,
    now: float,
    cap: CapCheck = UNDER,
    profile_zone: str | None = None,
) -> Verdict:
    """``cap``: whether the person's frequency caps have room for this notification (the
    answer to its ``frequency.SlotRequest``; only asked for people with caps)."""
    urgent = notice.priority is Priority.P0
    if not prefs.enabled and not (urgent or notice.mandatory):
        return suppressed(Reason.MASTER_OFF)
    if not notice.mandatory and not prefs.type_enabled(notice.type, default=notice.default_enabled):
        return suppressed(Reason.DISABLED_TYPE)
    if not urgent:
        waiting = _quiet_or_capped(prefs, notice, now, cap, profile_zone)
        if waiting is not None:
            return waiting
    channels = prefs.channels_for(notice.type, notice.channels)
    if not channels:
        if not notice.mandatory:
            return suppressed(Reason.NO_CHANNEL)
        channels = notice.channels
    return Verdict(Outcome.DELIVERED, channels=channels)


def _quiet_or_capped(
    prefs: Preferences,
    notice: Notice,
    now: float,
    cap: CapCheck,
    profile_zone: str | None,
) -> Verdict | None:
    if prefs.quiet_hours is not None:
        ends = quiet_until(prefs.quiet_hours, now, profile_zone)
        if ends is not None:
            if notice.priority is Priority.P1:
                return Verdict(Outcome.HELD, Reason.HELD_QUIET_HOURS, hold_until=ends)
            return suppressed(Reason.QUIET_HOURS_DROPPED)
    if prefs.caps is not None and not cap.room:
        if cap.over_day or (cap.over_hour and notice.priority is not Priority.P1):
            return suppressed(Reason.FREQ_CAP)
        if cap.over_hour:
            return Verdict(Outcome.HELD, Reason.FREQ_CAP, hold_until=cap.hour_frees_at)
    return None
