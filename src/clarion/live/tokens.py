"""End-user credentials: short-lived user tokens, and single-use stream tickets.

A user token is a JWT signed with HS256 (claims ``sub``, ``exp``, ``aud: "clarion"``; the
key id in the header), so a product's backend holding the shared secret can mint its own;
or ``POST /v1/users/{id}/tokens`` mints one with a sender key. Keys rotate as for
unsubscribe links (``keyring``): the first signs, all verify.

A token must never appear in a URL (proxies and logs keep URLs). EventSource cannot send
headers, so a device trades its token for a ticket (``POST /v1/me/stream-tickets``): 32
random bytes, valid 30 seconds, good for one connection; only its hash is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import jwt

from clarion.errors import UnauthenticatedError
from clarion.keyring import SigningKeys
from clarion.types import UserId

AUDIENCE = "clarion"
TOKEN_LIFETIME_S = 900
MAX_LIFETIME_S = 86_400
TICKET_LIFETIME_S = 30.0


def mint(user_id: UserId, keys: SigningKeys, now: float, *, ttl_s: int = TOKEN_LIFETIME_S) -> str:
    claims = {"sub": user_id, "aud": AUDIENCE, "iat": int(now), "exp": int(now) + ttl_s}
    key = keys.keys[keys.current]
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": keys.current})


def verify(token: str, keys: SigningKeys, now: float) -> UserId:
    """The person a genuine, unexpired token is for; ``UnauthenticatedError`` otherwise."""
    refused = UnauthenticatedError("the user token is not valid; get a new one")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = keys.keys[kid] if kid is not None else keys.keys[keys.current]
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=AUDIENCE,
            # Times are checked below on Clarion's clock, not PyJWT's (tests move ours).
            options={
                "require": ["sub", "exp", "aud"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, KeyError, TypeError):
        raise refused from None
    exp, sub = claims["exp"], claims["sub"]
    if not isinstance(exp, int | float) or not isinstance(sub, str) or not sub:
        raise refused
    if exp <= now:  # checked on Clarion's clock, which tests move
        raise UnauthenticatedError("the user token has expired; get a new one")
    if exp - now > MAX_LIFETIME_S:
        raise UnauthenticatedError("a user token may live at most a day")
    return UserId(sub)


def looks_like_token(secret: str) -> bool:
    """A JWT (three dot-separated parts), as opposed to an API key (``clk_…``)."""
    return secret.count(".") == 2


def new_ticket() -> tuple[str, str]:
    """A ticket, and the hash under which it is stored."""
    ticket = secrets.token_urlsafe(32)
    return ticket, ticket_hash(ticket)


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()
