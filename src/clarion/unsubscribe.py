"""One-click unsubscribe tokens: what to turn off, for whom, signed.

A token is ``<payload>.<signature>``: the payload (base64url JSON) names the user and either a
notification type or a channel plus the id of the key that signed it; the signature is
HMAC-SHA256 under that key. Changing any byte, or moving a token to another user, breaks the
signature. Keys rotate by adding a new current key while older ones still verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from clarion.errors import InputError
from clarion.keyring import SigningKeys
from clarion.models import Channel
from clarion.types import UserId


@dataclass(frozen=True, slots=True)
class UnsubscribeScope:
    user_id: UserId
    type: str | None = None
    channel: Channel | None = None
    sender: str | None = None
    """Who sent the message carrying the link: their status webhooks hear about it."""

    def describe(self) -> str:
        if self.type is not None:
            return f"“{self.type.replace('_', ' ')}” notifications"
        assert self.channel is not None
        return f"all {self.channel.value.replace('_', ' ')} notifications"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(scope: UnsubscribeScope, keys: SigningKeys) -> str:
    doc = {"u": scope.user_id, "k": keys.current}
    if scope.type is not None:
        doc["t"] = scope.type
    if scope.channel is not None:
        doc["c"] = scope.channel.value
    if scope.sender is not None:
        doc["s"] = scope.sender
    payload = _b64(orjson.dumps(doc))
    signature = hmac.new(keys.keys[keys.current], payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(signature)}"


def read_token(token: str, keys: SigningKeys) -> UnsubscribeScope:
    """The scope a genuine token names; InputError for anything forged or altered."""
    refused = InputError.single("token", "this unsubscribe link is not valid")
    payload, _, signature = token.partition(".")
    try:
        doc = orjson.loads(_unb64(payload))
        key = keys.keys[doc["k"]]
        expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise refused
        channel = Channel(doc["c"]) if "c" in doc else None
        scope = UnsubscribeScope(UserId(doc["u"]), doc.get("t"), channel, doc.get("s"))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise refused from None
    if (scope.type is None) == (scope.channel is None):
        raise refused
    return scope
