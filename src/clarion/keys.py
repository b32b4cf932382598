"""API keys: created once, shown once, stored only as a SHA-256 hash.

Keys are 256-bit random secrets, so a plain (fast) hash is enough: there is nothing to
brute-force. The key id inside each key is public and names it in lists and revocations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from clarion.clock import Clock
from clarion.errors import InputError
from clarion.ids import new_api_key
from clarion.models import SenderKey
from clarion.stores.base import KeyStore
from clarion.validation import check_name


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(
    store: KeyStore,
    clock: Clock,
    *,
    sender: str,
    types: Iterable[str] | None = None,
    rate_per_s: float | None = None,
    admin: bool = False,
) -> tuple[SenderKey, str]:
    """Create and store a key; returns it with its secret (the only time the secret exists)."""
    check_name("sender", sender)
    type_set = None if types is None else frozenset(types)
    for name in type_set or ():
        check_name("types", name)
    if rate_per_s is not None and not rate_per_s > 0:
        raise InputError.single("rate", "must be a positive number of events per second")
    key_id, secret = new_api_key()
    key = SenderKey(
        key_id=key_id,
        sender=sender,
        types=type_set,
        rate_per_s=rate_per_s,
        admin=admin,
        created_at=clock.now(),
    )
    await store.create(key, hash_key(secret))
    return key, secret
