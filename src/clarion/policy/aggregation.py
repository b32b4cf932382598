"""Aggregation windows (seed 001 "Notification Aggregation Service"): 5,000 likes on one
photo become two pushes — "Alice liked your photo" at once, then one summary, "Bob, Carol
and 4,997 others liked your photo" — and one inbox entry that counts them all.

Per key (recipient, type, object), time-based with eager first delivery:

* a notification with no window open goes out at once (``FIRST``) and opens one of the
  type's length;
* one that arrives while a window is open is only counted (``COUNTED``); the first of those
  schedules the window's summary (``Joined.timer``);
* when the window ends, its summary is *taken* once: the number counted since the last
  summary and the newest names, or nothing if nothing new came — never "and 0 others";
* every notification of the key lands in one inbox entry (the key's first event's), whose
  count and newest actors grow with each.

Every step is a pure function over one key's ``Window``; each store applies it inside
whatever makes it atomic (a write transaction on SQLite, per-key advisory locks on
PostgreSQL, a Lua script on Redis), so two workers — or many notifications for one key in
one claim — never both open a window or both send its summary. A notification's answer is
kept with the key (``members``), keyed by its event: a redelivered claim gets the same
answers, so a worker killed mid-window sends no second "first" and schedules no second
summary; taking a window's summary again returns the same summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from clarion.types import Seq, UserId

NAMED = 3
"""Actors an inbox entry names ("Bob, Carol, Dan and 4,996 others")."""
KEEP_WINDOWS = 2
"""Answers are kept for this many windows before the current one: a redelivered claim
comes back within a lease, long before that. (The SQLite store, whose answers are filed in
arrival order, keeps them for a span of time instead.)"""


class Role(StrEnum):
    FIRST = "first"
    """Goes out now, and opens the key's window."""
    COUNTED = "counted"
    """Counted into the window's summary (and the inbox entry), not sent on its own."""


@dataclass(frozen=True, slots=True)
class AggregateKey:
    user_id: UserId
    type: str
    object: str
    """"" when the type's events name no object (follows: "Bob and 4 others followed you")."""

    def text(self) -> str:
        """One string for the key (Redis keys, lock hashes, batch keys)."""
        return f"{self.user_id}\x1f{self.type}\x1f{self.object}"


@dataclass(frozen=True, slots=True)
class JoinRequest:
    key: AggregateKey
    seq: Seq
    actor: str | None
    window_s: float


@dataclass(frozen=True, slots=True)
class Joined:
    """What became of one notification, and the key's entry after it."""

    role: Role
    window: int
    ends_at: float
    entry: Seq
    """The key's inbox entry: the seq of the key's first event."""
    count: int
    """Notifications aggregated into the entry so far."""
    actors: tuple[str, ...]
    """The newest named actors of the entry, newest first (at most ``NAMED``)."""
    timer: bool = False
    """This notification schedules the window's summary (one per window)."""

    def to_json(self) -> list[Any]:
        return [self.role.value, self.window, self.ends_at, self.entry, self.count,
                list(self.actors), self.timer]  # fmt: skip

    @classmethod
    def from_json(cls, doc: list[Any]) -> Joined:
        role, window, ends_at, entry, count, actors, timer = doc
        return cls(Role(role), int(window), float(ends_at), Seq(int(entry)), int(count),
                   tuple(actors), bool(timer))  # fmt: skip


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """A window's summary: ``count`` new since the last notification that went out."""

    window: int
    count: int
    actors: tuple[str, ...]
    """Newest first: one name when one is new ("Bob also liked…"), else two ("Bob, Carol
    and 47 others…")."""
    total: int
    """Everything on the key's inbox entry by now."""
    entry: Seq
    """The key's inbox entry (a digest lists the key once, by it)."""

    def to_json(self) -> list[Any]:
        return [self.window, self.count, list(self.actors), self.total, self.entry]

    @classmethod
    def from_json(cls, doc: list[Any]) -> WindowSummary:
        window, count, actors, total, entry = doc
        return cls(int(window), int(count), tuple(actors), int(total), Seq(int(entry)))


@dataclass(slots=True)
class Window:
    """One key's state."""

    window: int = 0
    ends_at: float = 0.0
    entry: Seq | None = None
    count: int = 0
    pending: int = 0
    """Counted since the last notification that went out (the next summary's count)."""
    actors: list[str] = field(default_factory=list)
    timer_window: int = 0
    """The window whose summary is scheduled."""
    taken_window: int = 0
    taken: WindowSummary | None = None
    """The summary of ``taken_window``, handed out again if its timer fires twice."""

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "ends_at": self.ends_at,
            "entry": self.entry,
            "count": self.count,
            "pending": self.pending,
            "actors": self.actors,
            "timer_window": self.timer_window,
            "taken_window": self.taken_window,
            "taken": None if self.taken is None else self.taken.to_json(),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Window:
        taken = doc.get("taken")
        return cls(
            window=int(doc["window"]),
            ends_at=float(doc["ends_at"]),
            entry=None if doc.get("entry") is None else Seq(int(doc["entry"])),
            count=int(doc["count"]),
            pending=int(doc["pending"]),
            actors=list(doc["actors"]),
            timer_window=int(doc["timer_window"]),
            taken_window=int(doc["taken_window"]),
            taken=None if not taken else WindowSummary.from_json(taken),
        )


def join(window: Window, request: JoinRequest, now: float) -> Joined:
    """Add one notification (not seen before) to its key's ``window``, in place."""
    actor = request.actor or ""
    window.count += 1
    if actor:
        window.actors = [actor, *(a for a in window.actors if a != actor)][:NAMED]
    if window.entry is None:
        window.entry = request.seq
    if window.window == 0 or now >= window.ends_at:
        # Nothing open: this one goes out now. A summary still due for the window before
        # keeps its count (its timer takes it).
        window.window += 1
        window.ends_at = now + request.window_s
        return Joined(Role.FIRST, window.window, window.ends_at, window.entry, window.count,
                      tuple(window.actors))  # fmt: skip
    window.pending += 1
    timer = window.timer_window < window.window
    if timer:
        window.timer_window = window.window
    return Joined(Role.COUNTED, window.window, window.ends_at, window.entry, window.count,
                  tuple(window.actors), timer)  # fmt: skip


def join_all(
    requests: Sequence[JoinRequest],
    windows: Mapping[AggregateKey, Window],
    members: Mapping[tuple[AggregateKey, Seq], Joined],
    now: float,
) -> tuple[list[Joined], dict[AggregateKey, Window], dict[tuple[AggregateKey, Seq], Joined]]:
    """``requests`` in order against the stored ``windows`` and ``members``; returns the
    answers, the windows that changed and the new members to store."""
    changed: dict[AggregateKey, Window] = {}
    new: dict[tuple[AggregateKey, Seq], Joined] = {}
    answers = []
    for request in requests:
        seen = members.get((request.key, request.seq)) or new.get((request.key, request.seq))
        if seen is not None:
            answers.append(seen)  # a redelivery: the same answer as the first time
            continue
        window = changed.get(request.key)
        if window is None:
            stored = windows.get(request.key)
            window = changed[request.key] = Window() if stored is None else replace(stored)
            window.actors = list(window.actors)
        joined = join(window, request, now)
        new[(request.key, request.seq)] = joined
        answers.append(joined)
    return answers, changed, new


def take(window: Window | None, number: int) -> WindowSummary | None:
    """The summary of window ``number``, once: its count is reset in ``window`` (in place).
    Asked again for the same window, the same summary; nothing new since, None."""
    if window is None or number <= 0:
        return None
    if window.taken_window >= number:
        taken = window.taken
        return taken if taken is not None and taken.window == number else None
    window.taken_window = number
    if window.pending == 0:
        window.taken = None
        return None
    named = window.actors[: 1 if window.pending == 1 else 2]
    assert window.entry is not None  # a window with notifications has its entry
    summary = WindowSummary(number, window.pending, tuple(named), window.count, window.entry)
    window.pending = 0
    window.taken = summary
    return summary
