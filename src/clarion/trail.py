"""The delivery trail told as sentences a support person can paste (``clarion why``):

    evt_…: like from bob at 10:02 — held by quiet hours, then sent by push at 08:00;
    email skipped: the email address is not verified

One sentence per event, from the trail's rows in order: what each channel did, why what
was not sent was not, and times in the person's own zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from clarion.models import Channel, Outcome
from clarion.stores.records import ALL_CHANNELS, DeliveryRecord

_DONE = {
    Channel.IN_APP.value: "put in the inbox",
    Channel.LIVE.value: "shown live on an open device",
}
_WHY = {
    "killed": "a kill switch was on",
    "expired": "it expired (past its time to live) before it could go",
    "master_off": "they turned all notifications off",
    "disabled_type": "they turned this kind of notification off",
    "quiet_hours_dropped": "it came in their quiet hours and this kind is not kept for later",
    "held_quiet_hours": "quiet hours",
    "freq_cap": "their frequency cap was reached",
    "superseded": "a newer one with the same collapse key replaced it",
    "digest": "it went into their digest",
    "acknowledged on its stream": "the device had already acknowledged it live",
}


@dataclass(frozen=True, slots=True)
class About:
    """What the sentence opens with: the event itself."""

    event_id: str
    type: str
    actor: str | None
    created_at: float


def explain(about: About, rows: Sequence[DeliveryRecord], zone: str | None = None) -> str:
    """One event's trail for one person, as a sentence."""
    tz = _zone(zone)
    opening = f"{about.event_id}: {about.type}"
    if about.actor:
        opening += f" from {about.actor}"
    opening += f" at {_time(about.created_at, tz)}"
    clauses: list[str] = []
    held: dict[str, str] = {}  # channel → why it was held, until it went
    for row in sorted(rows, key=lambda r: (r.at, r.attempt)):
        channel = row.channel
        if row.outcome == Outcome.HELD.value:
            held[channel] = _held(row.reason)
            continue
        if row.outcome == Outcome.DELIVERED.value:
            done = _delivered(channel, row.reason)
            for waiting in (channel, ALL_CHANNELS):
                if waiting in held:
                    done = f"held by {held.pop(waiting)}, then {done} at {_time(row.at, tz)}"
                    break
            clauses.append(done)
        elif row.outcome == Outcome.SUPPRESSED.value:
            who = "not sent" if channel == ALL_CHANNELS else f"{_name(channel)} skipped"
            clauses.append(f"{who}: {because(row.reason)}")
        else:
            clauses.append(f"{_name(channel)} failed (attempt {row.attempt}): {row.reason}")
    for channel, why in held.items():
        where = "" if channel == ALL_CHANNELS else f" ({_name(channel)})"
        clauses.append(f"held{where} by {why}, not sent yet")
    if not clauses:
        clauses.append("nothing recorded for them yet (still on its way)")
    return f"{opening} — {'; '.join(clauses)}"


def because(reason: str | None) -> str:
    """Why a notification was not sent, in words."""
    if not reason:
        return "no reason recorded"
    if reason in _WHY:
        return _WHY[reason]
    head, _, rest = reason.partition(":")
    rest = rest.strip()
    if head == "no_channel":
        return f"there was no way to reach them ({rest})" if rest else "no way to reach them"
    if head == "aggregated":
        return "it was counted into a grouped notification (" + rest + ")"
    if head == "digest":
        return f"it went into their digest ({rest})"
    return reason


def _held(reason: str | None) -> str:
    if reason == "held_quiet_hours":
        return "quiet hours"
    if reason == "freq_cap":
        return "their hourly frequency cap"
    if reason and reason.startswith("digest"):
        return "their digest"
    if reason and reason.startswith("waiting:"):
        return "a provider outage (" + reason.partition(":")[2].strip() + ")"
    return reason or "a hold"


def _delivered(channel: str, reason: str | None) -> str:
    if channel == ALL_CHANNELS and reason and reason.startswith("aggregated"):
        return "counted into its grouped inbox entry"
    done = _DONE.get(channel, f"sent by {_name(channel)}")
    return f"{done} ({reason})" if reason else done


def _name(channel: str) -> str:
    return {"in_app": "in-app", "sms": "SMS"}.get(channel, channel)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _time(at: float, tz: ZoneInfo) -> str:
    moment = dt.datetime.fromtimestamp(at, tz)
    label = "UTC" if str(tz) == "UTC" else str(tz)
    return f"{moment:%Y-%m-%d %H:%M} {label}"
