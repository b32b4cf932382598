"""Web Push (RFC 8030) with VAPID (RFC 8292) and message encryption (RFC 8291).

pywebpush encrypts the payload for the subscription's keys and py_vapid signs the VAPID
token (valid 12 hours: push services refuse more than 24); the request itself goes out on our
own long-lived aiohttp session, whose resolver refuses private addresses — subscription
endpoints are user input.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp
import orjson
from py_vapid import Vapid02
from pydantic import Field, SecretStr, field_validator
from pywebpush import WebPusher

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
from clarion.channels.ssrf import PrivateTargetError, check_target, http_session
from clarion.models import Channel, Priority

VAPID_LIFETIME_S = 12 * 3600
_URGENCY = {Priority.P0: "high", Priority.P1: "normal", Priority.P2: "low"}


class Config(ProviderConfig):
    vapid_private_key: SecretStr = Field(
        description="The VAPID private key: PEM, or raw base64url as `vapid --gen` prints."
    )
    vapid_subject: str = Field(description="mailto: or https: contact for push services.")

    @field_validator("vapid_subject")
    @classmethod
    def _contact(cls, value: str) -> str:
        if not value.startswith(("mailto:", "https://")):
            raise ValueError("must be a mailto: or https: URL")
        return value

    def vapid(self) -> Vapid02:
        key = self.vapid_private_key.get_secret_value()
        if key.lstrip().startswith("-----BEGIN"):
            return Vapid02.from_pem(key.encode())
        return Vapid02.from_raw(key.encode())


SECRETS = {"vapid_private_key"}


def build_request(
    message: OutboundMessage, vapid: Vapid02, subject: str, now: float
) -> tuple[str, dict[str, str], bytes]:
    """``(endpoint, headers, encrypted body)`` for one subscription."""
    endpoint = message.address
    subscription = {"endpoint": endpoint, "keys": message.meta["keys"]}
    payload = orjson.dumps(
        {"title": message.content.title, "body": message.content.body, "data": message.content.data}
    )
    body = WebPusher(subscription).encode(payload, "aes128gcm")["body"]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(endpoint))
    claims = {"aud": origin, "exp": int(now) + VAPID_LIFETIME_S, "sub": subject}
    headers = {
        **vapid.sign(claims),
        "content-encoding": "aes128gcm",
        "content-type": "application/octet-stream",
        "ttl": str(max(int(message.expires_at - now), 0)),
        "urgency": _URGENCY[message.priority],
    }
    if message.collapse_key:
        headers["topic"] = _topic(message.collapse_key)
    return endpoint, headers, body


def _topic(key: str) -> str:
    """RFC 8030 topics are at most 32 URL-safe base64 characters."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)
    return safe[:32]


def classify_response(status: int, headers: dict[str, str], body: bytes) -> SendResult:
    if status in (200, 201, 202):
        return SendResult(SendStatus.DELIVERED, provider_ref=headers.get("location"))
    if status in (404, 410):
        return invalid(f"subscription gone ({status})")
    if status in (401, 403):
        return credentials(f"VAPID refused ({status})")
    if status == 429 or status >= 500:
        return retry_later(f"HTTP {status}", headers, throttled=status == 429)
    return permanent(f"HTTP {status}")


class WebPushProvider:
    channel = Channel.PUSH

    def __init__(self, name: str, config: Config, deps: ProviderDeps) -> None:
        self.name = name
        self._config = config
        self._deps = deps
        self._vapid = config.vapid()
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = http_session(
                allow_private=self._deps.allow_private_targets, ca_file=self._config.ca_file
            )
        return self._session

    async def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    async def _send_one(self, message: OutboundMessage) -> SendResult:
        try:
            check_target(message.address, allow_private=self._deps.allow_private_targets)
        except PrivateTargetError as exc:
            return invalid(f"endpoint refused: {exc}")
        try:
            url, headers, body = build_request(
                message, self._vapid, self._config.vapid_subject, time.time()
            )
            async with self._client().post(url, data=body, headers=headers) as response:
                answer = await response.read()
                return classify_response(
                    response.status, {k.lower(): v for k, v in response.headers.items()}, answer
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return connection_lost(exc)
        except (ValueError, KeyError) as exc:  # keys that do not decode: a broken subscription
            return invalid(f"subscription keys: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def make(name: str, config: Config, deps: ProviderDeps) -> WebPushProvider:
    return WebPushProvider(name, config, deps)
