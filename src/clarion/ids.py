"""Identifiers: time-ordered event ids and API keys."""

from __future__ import annotations

import os
import secrets
import time

from clarion.types import EventId

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_event_id(now_ms: int | None = None) -> EventId:
    """``evt_`` + a ULID-style 26-character id: 48 bits of milliseconds, 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    randomness = int.from_bytes(os.urandom(10), "big")
    return EventId("evt_" + _base32(ms, 10) + _base32(randomness, 16))


def new_api_key() -> tuple[str, str]:
    """A fresh key as ``(key_id, secret_key)``; the key id is the public part of the key."""
    key_id = secrets.token_hex(6)
    return key_id, f"clk_{key_id}_{secrets.token_urlsafe(32)}"
