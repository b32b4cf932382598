"""Apple Push Notification service: HTTP/2 with token (JWT) authentication.

* One ES256 provider token is shared by every worker (kept in the store) and renewed after
  40 minutes: Apple refuses tokens older than an hour (403 ExpiredProviderToken) and
  renewals more often than every 20 minutes (429 TooManyProviderTokenUpdates).
* 410 Unregistered carries the time the token stopped being valid; a token registered after
  that moment is a new registration and is kept.
* 403 credential errors are ours to fix: they never invalidate a device token.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import jwt
import orjson
from pydantic import Field, SecretStr

from clarion.channels.base import (
    OutboundMessage,
    SendResult,
    SendStatus,
    connection_lost,
    credentials,
    invalid,
    permanent,
    retry_later,
)
from clarion.channels.config import ProviderConfig, ProviderDeps
from clarion.channels.h2client import H2Pool, H2Response, StreamLostError, client_tls
from clarion.models import Channel, Priority
from clarion.stores.base import ProviderTokenStore

MAX_PAYLOAD = 4096
RENEW_AFTER_S = 40 * 60
MIN_RENEWAL_S = 20 * 60
_ID_SPACE = uuid.UUID("2f3c1c7e-7a3b-4d54-9a36-2c3b2a6d8e11")


class Config(ProviderConfig):
    base_url: str = "https://api.push.apple.com"
    team_id: str = Field(min_length=10, max_length=10)
    key_id: str = Field(min_length=10, max_length=10)
    private_key: SecretStr = Field(description="The .p8 signing key (PEM), ES256.")
    topic: str = Field(description="The app's bundle id.")
    connections: int = Field(2, ge=1, le=16)


SECRETS = {"private_key"}


def provider_token(config: Config, issued_at: int) -> str:
    return jwt.encode(
        {"iss": config.team_id, "iat": issued_at},
        config.private_key.get_secret_value(),
        algorithm="ES256",
        headers={"kid": config.key_id},
    )


def build_request(
    message: OutboundMessage, config: Config, token: str
) -> tuple[str, dict[str, str], bytes]:
    """``(path, headers, body)`` for one push; the body is cut to APNs' 4 KB limit."""
    headers = {
        "authorization": f"bearer {token}",
        "apns-topic": config.topic,
        "apns-push-type": "background" if message.background else "alert",
        # Apple refuses a background push at priority 10.
        "apns-priority": "5" if message.priority is Priority.P2 or message.background else "10",
        "apns-expiration": str(int(message.expires_at)),
        "apns-id": str(uuid.uuid5(_ID_SPACE, message.id)),
    }
    if message.collapse_key:
        headers["apns-collapse-id"] = message.collapse_key[:64]
    body = _payload(message, message.content.body)
    excess = len(body) - MAX_PAYLOAD
    if excess > 0:
        text = message.content.body.encode()
        trimmed = text[: max(len(text) - excess - 3, 0)].decode(errors="ignore") + "…"
        body = _payload(message, trimmed)
    return f"/3/device/{message.address}", headers, body


def _payload(message: OutboundMessage, text: str) -> bytes:
    if message.background:
        return orjson.dumps({"aps": {"content-available": 1}, **message.content.data})
    alert = {"title": message.content.title, "body": text}
    return orjson.dumps({"aps": {"alert": alert, "sound": "default"}, **message.content.data})


_INVALID_TOKEN = {"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered"}


def classify_response(status: int, headers: dict[str, str], body: bytes) -> SendResult:
    if status == 200:
        return SendResult(SendStatus.DELIVERED, provider_ref=headers.get("apns-id"))
    reason, stamp = _reason(body)
    if status == 410 or reason in _INVALID_TOKEN:
        return invalid(reason or "Unregistered", None if stamp is None else stamp / 1000)
    if status == 403:
        return credentials(reason or "Forbidden")
    if status == 429 or status >= 500:
        return retry_later(reason or f"HTTP {status}", headers, throttled=status == 429)
    return permanent(reason or f"HTTP {status}")


def _reason(body: bytes) -> tuple[str, float | None]:
    try:
        doc = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return "", None
    return str(doc.get("reason", "")), doc.get("timestamp")


@dataclass(slots=True)
class SharedProviderToken:
    """The provider token every worker uses, kept in the store so they all agree."""

    name: str
    config: Config
    store: ProviderTokenStore
    _token: str | None = None
    _issued_at: float = 0.0

    async def get(self, now: float, *, stale: str | None = None) -> str:
        """A valid token; ``stale`` names one the provider just called expired."""
        if self._token and self._token != stale and now - self._issued_at < RENEW_AFTER_S:
            return self._token
        current = await self.store.current(self.name)
        if current is not None:
            token, issued_at = current
            fresh = token != stale and now - issued_at < RENEW_AFTER_S
            # Apple refuses renewals within 20 minutes: keep the token even if it was called
            # stale (then the error stays a credentials problem for an operator: clocks).
            if fresh or now - issued_at < MIN_RENEWAL_S:
                self._token, self._issued_at = token, issued_at
                return token
        issued = int(now)
        token = provider_token(self.config, issued)
        expected = None if current is None else current[1]
        if not await self.store.replace(self.name, token, issued, expected=expected):
            current = await self.store.current(self.name)  # another worker renewed first
            assert current is not None
            token, issued = current[0], int(current[1])
        self._token, self._issued_at = token, issued
        return token


class APNSProvider:
    channel = Channel.PUSH

    def __init__(self, name: str, config: Config, deps: ProviderDeps) -> None:
        self.name = name
        self._config = config
        self._deps = deps
        self._token = SharedProviderToken(name, config, deps.tokens)
        self._pool = H2Pool(
            config.base_url, ssl_context=client_tls(config.ca_file), connections=config.connections
        )

    async def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        token = await self._token.get(self._deps.clock.now())
        results = list(await asyncio.gather(*(self._send_one(m, token) for m in messages)))
        expired = [i for i, r in enumerate(results) if r.reason == "ExpiredProviderToken"]
        if expired:  # renew once (if Apple allows it yet) and resend just those
            token = await self._token.get(self._deps.clock.now(), stale=token)
            again = await asyncio.gather(*(self._send_one(messages[i], token) for i in expired))
            for index, result in zip(expired, again, strict=True):
                results[index] = result
        return results

    async def _send_one(self, message: OutboundMessage, token: str) -> SendResult:
        try:
            path, headers, body = build_request(message, self._config, token)
            if len(body) > MAX_PAYLOAD:
                return permanent("PayloadTooLarge")
            response: H2Response = await self._pool.request("POST", path, headers, body)
        except (StreamLostError, OSError, TimeoutError) as exc:
            return connection_lost(exc)
        return classify_response(response.status, response.headers, response.body)

    async def close(self) -> None:
        await self._pool.close()


def make(name: str, config: Config, deps: ProviderDeps) -> APNSProvider:
    return APNSProvider(name, config, deps)
