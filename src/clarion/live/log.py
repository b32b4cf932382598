"""Each person's stream: a bounded log of what their devices should hear, in order.

Positions are per person and increase by one within an *epoch* (Centrifugo's model). A
device remembers the last ``epoch:position`` it saw and, reconnecting, asks for what came
after (SSE ``Last-Event-ID``, WebSocket ``since``). If its epoch is not the current one, or
what it missed is no longer kept (the log holds at least the last 1,000 messages, and 24
hours), it is told to ``reset`` and refetch: it never silently misses anything.

A person's stream is *active* while one of their devices has used ``/v1/me`` in the last
day; only active streams are written (nobody is listening to the others, and the inbox and
state hold everything anyway). A stream that lapsed starts a new epoch when it comes back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from clarion.types import JSONObject, UserId

KEEP = 1_000
"""Messages kept per person at least (and everything of the last day)."""
KEEP_S = 86_400.0
ACTIVE_S = 86_400.0
"""A stream stays active this long after a device of the person last used ``/v1/me``."""


class Kind(StrEnum):
    INBOX = "inbox"
    """A new inbox item, or an aggregate entry brought up to date: ``{"seq": n}``."""
    READ = "read"
    """Entries read or unread: ``{"ids": [...] | null, "read": bool, "unread_count": n}``."""
    STATE = "state"
    """Keyed state: ``{"key", "value", "version"}``."""
    LIVE = "live"
    """A notification on the live channel: ``{"seq": n}``."""
    RESET = "reset"
    """Refetch everything (sent, never stored)."""


# Post and Entry are made per update (15,000 a second at seed 002's scale) and never
# changed after: plain slots dataclasses, as a frozen one's __init__ costs ~150 ns a field.
@dataclass(slots=True)
class Post:
    """A message to append to a person's stream."""

    user_id: UserId
    kind: Kind
    body: JSONObject
    origin: str | None = None
    """The connection that caused it: it is not sent back there (a device's own update)."""
    critical: bool = False
    """P0 state: every device must acknowledge it (``live.critical``)."""


@dataclass(slots=True)
class Entry:
    id: int
    """Order across everyone's streams (for a process polling them all)."""
    user_id: UserId
    epoch: str
    pos: int
    kind: Kind
    body: JSONObject
    at: float
    origin: str | None = None
    critical: bool = False

    @property
    def position(self) -> str:
        return f"{self.epoch}:{self.pos}"


@dataclass(frozen=True, slots=True)
class Head:
    epoch: str
    pos: int
    """The last position written (0: nothing yet)."""


@dataclass(slots=True)
class Replay:
    """What a device asking from ``epoch:pos`` gets: the entries after it, or a reset."""

    head: Head
    entries: list[Entry] = field(default_factory=list)
    reset: str | None = None


def new_epoch() -> str:
    return secrets.token_hex(4)


def parse_position(text: str | None) -> tuple[str, int] | None:
    """``"a1b2c3d4:17"`` → ``("a1b2c3d4", 17)``; None for anything else."""
    if not text:
        return None
    epoch, _, pos = text.strip().partition(":")
    if not epoch or not pos.isdigit():
        return None
    return epoch, int(pos)


def replay_plan(head: Head, since: tuple[str, int] | None, oldest: int | None) -> str | None:
    """Why a device resuming from ``since`` must reset, or None if the log can serve it.
    ``oldest`` is the first position still kept (None: nothing kept)."""
    if since is None:
        return None  # a first connection: nothing to catch up on (it fetched on start)
    epoch, pos = since
    if epoch != head.epoch:
        return "the stream was restarted (a new epoch): refetch"
    if pos > head.pos:
        return "that position was never written: refetch"
    if pos < head.pos and (oldest is None or pos + 1 < oldest):
        return "too far behind: what was missed is no longer kept; refetch"
    return None
