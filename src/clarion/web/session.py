"""The operator dashboard's sign-in: an admin key exchanged once for a session cookie.

The cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind https) holds the key's
hash — never the key — an expiry and a CSRF secret, signed with the deployment's signing
keys; the key never sits in a URL or in the browser's storage. A request that changes
something must also send the CSRF secret in ``X-CSRF-Token`` (the page learns it from
``GET /ui/ops/session``, which another origin cannot read). Revoking the key ends every
session made with it: the key is looked up on each request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson

from clarion.keyring import SigningKeys

COOKIE = "clarion_ops"
CSRF_HEADER = "x-csrf-token"
LIFETIME_S = 8 * 3600
_SAFE = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True, slots=True)
class Session:
    key_hash: str
    expires_at: float
    csrf: str


def issue(key_hash: str, now: float, keys: SigningKeys) -> tuple[str, Session]:
    session = Session(key_hash, now + LIFETIME_S, secrets.token_urlsafe(24))
    body = _b64(orjson.dumps({"h": key_hash, "e": session.expires_at, "c": session.csrf}))
    return f"{keys.current}.{body}.{_sign(keys, keys.current, body)}", session


def read(cookie: str | None, now: float, keys: SigningKeys) -> Session | None:
    """The session a genuine, unexpired cookie holds; None for anything else."""
    if not cookie or cookie.count(".") != 2:
        return None
    kid, body, signature = cookie.split(".")
    if kid not in keys.keys or not hmac.compare_digest(signature, _sign(keys, kid, body)):
        return None
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        session = Session(str(doc["h"]), float(doc["e"]), str(doc["c"]))
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires_at > now else None


def allows(session: Session, method: str, csrf: str | None) -> bool:
    """Reading needs the cookie; changing also needs the page's CSRF secret."""
    if method.upper() in _SAFE:
        return True
    return csrf is not None and hmac.compare_digest(csrf, session.csrf)


def _sign(keys: SigningKeys, kid: str, body: str) -> str:
    mac = hmac.new(keys.keys[kid], b"ops-session." + body.encode(), hashlib.sha256)
    return _b64(mac.digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
