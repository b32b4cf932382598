"""Keyed state per person, latest wins (seed 002): the playback position of a show, the
membership's entitlements. The product sets it (``PUT /v1/users/{id}/state/{key}``
``{value, version}``), a device sets its own over WebSocket; a version not above the stored
one is ignored, so updates arriving out of order never go back in time. Every connected
device of the person hears each change (but the one that made it), and
``GET /v1/me/state`` is the snapshot a device loads on start — the source of truth it
checks on start and on every background push."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from clarion.live.log import Entry, Kind, Post
from clarion.types import UserId


@dataclass(frozen=True, slots=True)
class Stored:
    key: str
    value: Any
    version: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class Put:
    """What storing one state post did."""

    applied: bool
    """False: the stored version was as new or newer (ignored)."""
    entry: Entry | None = None
    """Its stream message, when the person's stream is active."""


def state_post(
    user_id: UserId,
    key: str,
    value: Any,
    version: int,
    *,
    origin: str | None = None,
    critical: bool = False,
) -> Post:
    body = {"key": key, "value": value, "version": version}
    return Post(user_id, Kind.STATE, body, origin=origin, critical=critical)


StateKey = tuple[UserId, str]


def key_of(post: Post) -> StateKey:
    return post.user_id, str(post.body["key"])


def rounds(posts: Sequence[Post]) -> list[list[int]]:
    """The positions of ``posts`` in rounds that can each be stored in one statement: each
    key's first post in the first round, its second in the second, and so on, so a later
    post of a key sees the earlier one. A batch rarely holds a key twice; when one does,
    the rest of it still goes in bulk (one by one, a 1,000-update batch was 4,000 round
    trips on PostgreSQL). Keys are independent, so only each key's own order is kept."""
    seen: dict[StateKey, int] = {}
    found: list[list[int]] = []
    for n, post in enumerate(posts):
        key = key_of(post)
        round_ = seen.get(key, 0)
        seen[key] = round_ + 1
        if round_ == len(found):
            found.append([])
        found[round_].append(n)
    return found


def puts_of(
    keys: Sequence[StateKey], applied: Collection[StateKey], entries: Sequence[Entry]
) -> list[Put]:
    """What storing each post did, from the keys the upsert changed and what they appended."""
    streamed = {(e.user_id, e.body["key"]): e for e in entries}
    return [Put(True, streamed.get(key)) if key in applied else Put(False) for key in keys]
