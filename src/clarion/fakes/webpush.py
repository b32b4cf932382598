"""A Web Push service look-alike: hands out subscriptions (as a browser would get them),
checks VAPID, and decrypts every payload with the subscription's private key."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import http_ece
import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.fakes.behaviour import Behaviour, Recorder

VAPID_MAX_S = 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_vapid_key() -> tuple[str, str]:
    """(private PEM for Clarion, public key base64url as a page's applicationServerKey)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return private, _b64(public)


@dataclass
class _Subscription:
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes


class FakeWebPush:
    def __init__(self) -> None:
        self.base_url = ""
        self.behaviour = Behaviour()
        self.received = Recorder()
        self._subscriptions: dict[str, _Subscription] = {}

    def subscribe(self) -> dict[str, Any]:
        """A PushSubscription as ``pushManager.subscribe()`` returns it in a browser."""
        sub_id = secrets.token_urlsafe(12)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self._subscriptions[sub_id] = _Subscription(key, auth)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.base_url}/push/{sub_id}",
            "keys": {"p256dh": _b64(public), "auth": _b64(auth)},
        }

    async def push(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["sub"]
        subscription = self._subscriptions.get(sub_id)
        if subscription is None:
            return web.Response(status=404)
        problem = self._check_vapid(request)
        if problem is not None:
            return web.Response(status=403, text=problem)
        rule = self.behaviour.decide(sub_id)
        if rule is not None:
            await asyncio.sleep(rule.latency_s)
            if rule.status != 201:
                headers = {}
                if rule.retry_after_s is not None:
                    headers["Retry-After"] = str(int(rule.retry_after_s))
                return web.Response(status=rule.status, headers=headers)
        try:
            plain = http_ece.decrypt(
                await request.read(),
                private_key=subscription.private_key,
                auth_secret=subscription.auth,
                version="aes128gcm",
            )
        except Exception as exc:
            return web.Response(status=400, text=f"cannot decrypt: {exc}")
        self.received.add(
            {
                "subscription": sub_id,
                "payload": orjson.loads(plain),
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )
        return web.Response(status=201, headers={"Location": f"{self.base_url}/msg/{sub_id}"})

    def _check_vapid(self, request: web.Request) -> str | None:
        scheme, _, rest = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "vapid":
            return "missing VAPID authorization"
        parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
        try:
            point = _unb64(parts["k"])
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
            claims = jwt.decode(parts["t"], key, algorithms=["ES256"], audience=self.base_url)
        except (KeyError, ValueError, jwt.PyJWTError) as exc:
            return f"VAPID token refused: {exc}"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https://")):
            return "VAPID sub must be mailto: or https:"
        if claims["exp"] - time.time() > VAPID_MAX_S:
            return "VAPID token lives longer than 24 hours"
        return None
