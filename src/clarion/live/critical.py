"""Critical state (seed 002: "what happens when a user that just canceled their membership
is able to still stream without having received the notification").

A P0 state change reaches every connected device at once (its stream message says
``critical``), and each device acknowledges it (WebSocket ``ack``, or ``POST /v1/me/acks``).
Ten seconds later, every push device of the person that has not acknowledged it — not
connected, or connected but silent — gets a background push (APNs ``content-available``,
an FCM data message) telling the app to refetch ``GET /v1/me/state``.

The state endpoint is the source of truth: an app checks it on start and on every push,
and streams only on what it says. A device that was off when the membership ended learns
it the moment it starts; one that was on hears it within a second, or is woken.

The check is an ordinary P0 event of the built-in type ``clarion.refresh``, due ten
seconds after the change: preferences, TTL and kill switches apply, and its trail is the
person's delivery log like any other push's.
"""

from __future__ import annotations

import hashlib

from clarion.ids import new_event_id
from clarion.live.log import Entry, Post
from clarion.models import Channel, Event, FanOut, Priority

REFRESH_TYPE = "clarion.refresh"
ACK_WAIT_S = 10.0
REFRESH_TTL_S = 3600.0


def refresh_event(
    post: Post, entry: Entry | None, now: float, *, idempotency_window_s: float
) -> Event:
    """The check due ``ACK_WAIT_S`` after the critical change ``post`` (its stream
    ``entry``, if the person's stream is active; without one, every device owes it)."""
    position = None if entry is None else entry.position
    key, version = post.body.get("key"), post.body.get("version")
    digest = hashlib.sha256(f"{post.user_id}\x1f{key}\x1f{version}".encode()).hexdigest()[:32]
    return Event(
        event_id=new_event_id(),
        sender="clarion",
        type=REFRESH_TYPE,
        priority=Priority.P0,
        fan_out=FanOut.DIRECT,
        channels=(Channel.PUSH,),
        created_at=now,
        expires_at=now + REFRESH_TTL_S,
        idempotency_key=f"clarion:{digest}",
        idempotency_expires_at=now + idempotency_window_s,
        title="",
        body="",
        mandatory=True,
        target=post.user_id,
        payload={"refresh": "state", "key": key, "version": version, "position": position},
        send_at=now + ACK_WAIT_S,
    )


def owes(acked: tuple[str, int] | None, position: str | None) -> bool:
    """Whether a device that acknowledged ``acked`` (epoch, pos) still owes ``position``
    (None: the change never reached a stream, so every device owes it)."""
    if position is None or acked is None:
        return True
    epoch, _, pos = position.partition(":")
    return acked[0] != epoch or acked[1] < int(pos or 0)
