"""Frequency caps: rolling hourly and daily limits on how many notifications a person gets.

Counts are exact rolling windows over the person's recent notifications, so "10 an hour"
means no 11th within any sixty minutes, and a delayed notification is released the moment
the oldest one in the window turns an hour old.

A notification takes its place in the windows *before* it is delivered (``allot``): each
store reserves places atomically against every other worker (one write transaction on
SQLite, per-person locks on PostgreSQL, one Lua script on Redis) and in the order the
requests come, so many notifications for one person in one claim, or two workers deciding
for the same person at once, can never both take the last place. A place is keyed by the
event: asking again for an event that already holds one (a redelivered claim) gets it
again, and never counts twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from clarion.types import Seq, UserId

HOUR_S = 3600.0
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class FrequencyCaps:
    per_hour: int | None = None
    per_day: int | None = None


@dataclass(frozen=True, slots=True)
class CapCheck:
    over_hour: bool = False
    over_day: bool = False
    hour_frees_at: float | None = None
    """When the hourly count next drops below the cap (for delaying P1)."""

    @property
    def room(self) -> bool:
        return not (self.over_hour or self.over_day)


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


class SlotRequest(NamedTuple):
    """One notification asking for a place in one capped person's windows (a tuple:
    evaluation makes one per capped recipient, and a tuple is the cheapest to make)."""

    user_id: UserId
    seq: Seq
    caps: FrequencyCaps
    force: bool = False
    """P0: always takes its place — it passes the caps, but counts toward them."""


Slots = Mapping[UserId, Mapping[Seq, float]]
"""The places people hold now: per person, the events they were notified of and when."""


def allot(
    requests: Sequence[SlotRequest], held: Slots, now: float
) -> tuple[list[CapCheck], list[tuple[UserId, Seq]]]:
    """Decide ``requests`` in order against the places already ``held`` (the last day's).

    Returns each request's answer (``UNDER``: it has its place) and the new places to
    store, each taken at ``now``. The stores call this inside whatever makes the read and
    the write atomic."""
    taken: dict[UserId, dict[Seq, float]] = {}
    answers: list[CapCheck] = []
    new: list[tuple[UserId, Seq]] = []
    for request in requests:
        user = request.user_id
        places = taken.get(user)
        if places is None:
            places = taken[user] = dict(held.get(user, {}))
        if request.seq in places:
            answers.append(UNDER)  # this event holds a place already (a redelivery)
            continue
        answer = UNDER if request.force else check(request.caps, list(places.values()), now)
        if answer.room:
            places[request.seq] = now
            new.append((user, request.seq))
        answers.append(answer)
    return answers, new
