"""The webhook channel: a user (or an integration) registers an HTTPS endpoint as one of its
devices and receives its notifications as signed JSON (Standard Webhooks).

``webhook-id`` is the same on every retry of one notification, so a receiver can dedup;
several secrets sign at once during rotation; a 410 answer retires the endpoint; 5xx and
timeouts are retried. Endpoints are user input: private targets are refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import aiohttp
import orjson

from clarion.channels import signing
from clarion.channels.base import (
    OutboundMessage,
    SendResult,
    SendStatus,
    connection_lost,
    invalid,
    permanent,
    retry_later,
)
from clarion.channels.config import ProviderConfig, ProviderDeps
from clarion.channels.ssrf import PrivateTargetError, check_target, http_session
from clarion.models import Channel


class Config(ProviderConfig):
    timeout_s: float = 10.0


SECRETS: set[str] = set()


def build_request(message: OutboundMessage, now: float) -> tuple[str, dict[str, str], bytes]:
    body = orjson.dumps(
        {
            "type": "notification",
            "timestamp": int(now),
            "data": {
                "id": message.id,
                "event_id": message.event_id,
                "user_id": message.user_id,
                "title": message.content.title,
                "body": message.content.body,
                **message.content.data,
            },
        }
    )
    headers = signing.headers(message.id, int(now), body, message.meta["secrets"])
    return message.address, headers, body


def classify_response(status: int, headers: Mapping[str, str], body: bytes) -> SendResult:
    if 200 <= status < 300:
        return SendResult(SendStatus.DELIVERED)
    if status == 410:
        return invalid("endpoint gone (410)")
    if status == 429 or status >= 500 or status == 408:
        return retry_later(f"HTTP {status}", headers, throttled=status == 429)
    return permanent(f"HTTP {status}")


class WebhookProvider:
    channel = Channel.WEBHOOK

    def __init__(self, name: str, config: Config, deps: ProviderDeps) -> None:
        self.name = name
        self._config = config
        self._deps = deps
        self._session: aiohttp.ClientSession | None = None

    async def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        if self._session is None:
            self._session = http_session(
                allow_private=self._deps.allow_private_targets,
                ca_file=self._config.ca_file,
                timeout_s=self._config.timeout_s,
            )
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    async def _send_one(self, message: OutboundMessage) -> SendResult:
        assert self._session is not None
        try:
            check_target(message.address, allow_private=self._deps.allow_private_targets)
        except PrivateTargetError as exc:
            return invalid(f"endpoint refused: {exc}")
        url, headers, body = build_request(message, time.time())
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                return classify_response(
                    response.status, {k.lower(): v for k, v in response.headers.items()}, answer
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return connection_lost(exc)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def make(name: str, config: Config, deps: ProviderDeps) -> WebhookProvider:
    return WebhookProvider(name, config, deps)
