"""Idempotency keys: the caller's own, or one computed from what the event is about.

Keys are namespaced by sender, so two producers can never collide on each other's keys.
A computed key follows seed 001 (``hash(type + actor + target + object)``); for an event
addressed to a list of recipients the sorted list stands in for ``target``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def idempotency_key(
    sender: str,
    *,
    explicit: str | None,
    type_name: str,
    actor: str | None,
    target: str | None,
    recipients: Sequence[str],
    object_id: str | None,
) -> str:
    if explicit is not None:
        material = "\x1f".join(("key", explicit))
    else:
        audience = target if target is not None else "\x1e".join(sorted(recipients))
        material = "\x1f".join(("computed", type_name, actor or "", audience, object_id or ""))
    digest = hashlib.sha256(material.encode()).hexdigest()[:32]
    return f"{sender}:{digest}"
