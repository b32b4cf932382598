"""Rotating signing keys: ``"k2:<secret>,k1:<secret>"`` — the first signs, every one
verifies, so a key is rotated by putting a new one first and dropping the old one once what
it signed has expired. Unsubscribe links and end-user tokens both use them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """``current`` signs; every key verifies (``{key id: secret}``)."""

    current: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, spec: str) -> SigningKeys:
        """``"k2:secret2,k1:secret1"``: the first is current."""
        pairs = [item.split(":", 1) for item in spec.split(",") if item.strip()]
        if not pairs or any(len(p) != 2 or not p[0] or len(p[1]) < 16 for p in pairs):
            raise ValueError("signing keys look like 'k1:<at least 16 characters>,k0:…'")
        return cls(pairs[0][0], {k: v.encode() for k, v in pairs})


def new_key_spec() -> str:
    return f"k1:{secrets.token_urlsafe(32)}"
