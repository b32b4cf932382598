"""An APNs look-alike: HTTP/2 over TLS, provider tokens verified like Apple does."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.fakes.behaviour import Behaviour, Recorder
from clarion.fakes.h2server import DropConnection, H2Request

TOKEN_LIFETIME_S = 3600
MIN_RENEWAL_S = 20 * 60


def new_signing_key() -> tuple[str, str]:
    """An APNs-style .p8 key pair: (private PEM for Clarion, public PEM for the fake)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class FakeAPNs:
    def __init__(self, *, team_id: str, key_id: str, public_key: str, topic: str) -> None:
        self.team_id = team_id
        self.key_id = key_id
        self.public_key = public_key
        self.topic = topic
        self.behaviour = Behaviour()
        self.received = Recorder()
        self.clock_offset_s = 0.0
        """Added to the look-alike's clock: makes fresh tokens look old."""
        self._accepted: tuple[str, int] | None = None

    def forget_tokens(self) -> None:
        """Start over, as if no provider token had ever been seen (between tests)."""
        self._accepted = None
        self.clock_offset_s = 0.0

    async def handle(self, request: H2Request) -> tuple[int, dict[str, str], bytes]:
        if request.method != "POST" or not request.path.startswith("/3/device/"):
            return 404, {}, b""
        device = request.path.rsplit("/", 1)[-1]
        apns_id = request.headers.get("apns-id") or str(uuid.uuid4())
        refused = self._check_token(request.headers.get("authorization", ""))
        if refused is not None:
            return _reason(*refused, apns_id)
        if request.headers.get("apns-topic") != self.topic:
            return _reason(400, "TopicDisallowed", apns_id)
        if len(request.body) > 4096:
            return _reason(413, "PayloadTooLarge", apns_id)
        rule = self.behaviour.decide(device)
        if rule is not None:
            await asyncio.sleep(rule.latency_s)
            if rule.drop:
                raise DropConnection
            if rule.status != 200:
                headers = {"apns-id": apns_id}
                if rule.retry_after_s is not None:
                    headers["retry-after"] = str(int(rule.retry_after_s))
                return rule.status, headers, orjson.dumps(rule.body or {"reason": "Error"})
        self.received.add(
            {
                "token": device,
                "headers": {k: v for k, v in request.headers.items() if not k.startswith(":")},
                "payload": orjson.loads(request.body),
            }
        )
        return 200, {"apns-id": apns_id}, b""

    def _check_token(self, authorization: str) -> tuple[int, str] | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return 403, "MissingProviderToken"
        if self._accepted is not None and self._accepted[0] == token:
            # Apple checks a connection's token once, not on every push: do the same.
            if time.time() + self.clock_offset_s - self._accepted[1] > TOKEN_LIFETIME_S:
                return 403, "ExpiredProviderToken"
            return None
        try:
            header = jwt.get_unverified_header(token)
            claims: dict[str, Any] = jwt.decode(
                token, self.public_key, algorithms=["ES256"], options={"verify_iat": False}
            )
        except jwt.PyJWTError:
            return 403, "InvalidProviderToken"
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return 403, "InvalidProviderToken"
        issued = int(claims.get("iat", 0))
        if time.time() + self.clock_offset_s - issued > TOKEN_LIFETIME_S:
            return 403, "ExpiredProviderToken"
        renewed = self._accepted is not None and self._accepted[0] != token
        if renewed and self._accepted is not None and issued - self._accepted[1] < MIN_RENEWAL_S:
            return 429, "TooManyProviderTokenUpdates"
        self._accepted = (token, issued)
        return None


def _reason(status: int, reason: str, apns_id: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"apns-id": apns_id}, orjson.dumps({"reason": reason})


def unregistered(since_s: float) -> dict[str, Any]:
    """The 410 body: the token stopped being valid at ``since_s`` (Unix seconds)."""
    return {"reason": "Unregistered", "timestamp": int(since_s * 1000)}
