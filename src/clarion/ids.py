"""Identifiers: time-ordered event ids and API keys (the only secrets here)."""

from __future__ import annotations

import random
import secrets
import time

from clarion.types import EventId


def new_event_id(now_ms: int | None = None) -> EventId:
    """``evt_`` + 32 hex digits: 48 bits of milliseconds, then 80 random bits.

    Ids sort by creation time and collide with negligible probability; they are not secrets,
    so the process's seeded PRNG is enough (``os.urandom`` costs a system call per event,
    which showed up as a sixth of the batch ingest path).
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return EventId(f"evt_{ms & 0xFFFF_FFFF_FFFF:012x}{random.getrandbits(80):020x}")


def new_api_key() -> tuple[str, str]:
    """A fresh key as ``(key_id, secret_key)``; the key id is the public part of the key."""
    key_id = secrets.token_hex(6)
    return key_id, f"clk_{key_id}_{secrets.token_urlsafe(32)}"


def new_id(prefix: str) -> str:
    """``<prefix>_`` + 20 random hex digits: names for things people create (schedules)."""
    return f"{prefix}_{secrets.token_hex(10)}"
