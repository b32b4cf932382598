"""Idempotency keys: the caller's own, or one computed from the whole event as sent.

Keys are namespaced by sender, so two producers can never collide on each other's keys.

A computed key must tell a retry of an event from a new event, so it covers everything the
producer said about the event: type, fan-out, actor, target (or the recipient list, in any
order), object, payload (as canonical JSON: key order and spacing do not matter), collapse
key, campaign, priority, TTL and template. A byte-identical retry gets the same key; a
second comment on the same photo or the next playback position (another payload) does not.
Seed 001 hashes only type, actor, target and object, which drops exactly those events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson


def idempotency_key(sender: str, *, explicit: str | None, about: Mapping[str, Any]) -> str:
    """``about``: the event's fields as sent (JSON values), used only without ``explicit``."""
    if explicit is not None:
        material = b"key\x1f" + explicit.encode()
    else:
        material = b"computed\x1f" + orjson.dumps(about, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(material).hexdigest()[:32]
    return f"{sender}:{digest}"
