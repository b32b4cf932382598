"""SMS over a Twilio-style REST API, with honest segment counting and status callbacks.

A text that fits the GSM-7 alphabet costs 160 characters in one segment and 153 per segment
when split (extension characters such as ``€`` or ``{`` take two); any other character
switches the whole text to UCS-2: 70, then 67 UTF-16 units per segment. SMS is the most
expensive channel by far, so texts longer than ``max_segments`` are cut to fit rather than
sent as a dozen billable parts. Delivery receipts arrive later as signed status callbacks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
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
from clarion.channels.ssrf import http_session
from clarion.models import Channel

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True, slots=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    count: int
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)


def _cost(char: str, gsm: bool) -> int:
    if gsm:
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def segments(text: str) -> Segments:
    gsm = is_gsm7(text)
    single, multi = (160, 153) if gsm else (70, 67)
    units = sum(_cost(c, gsm) for c in text)
    if units <= single:
        return Segments("GSM-7" if gsm else "UCS-2", 1 if text else 0, units)
    count, room = 1, multi
    for char in text:  # a two-unit character never straddles two segments
        cost = _cost(char, gsm)
        if cost > room:
            count, room = count + 1, multi
        room -= cost
    return Segments("GSM-7" if gsm else "UCS-2", count, units)


def fit(text: str, max_segments: int) -> str:
    """``text``, cut (with an ellipsis in the same alphabet) to at most ``max_segments``."""
    if segments(text).count <= max_segments:
        return text
    ellipsis = "..." if is_gsm7(text) else "…"
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with its ellipsis
        mid = (low + high + 1) // 2
        if segments(text[:mid] + ellipsis).count <= max_segments:
            low = mid
        else:
            high = mid - 1
    return text[:low] + ellipsis


class Config(ProviderConfig):
    base_url: str = "https://api.twilio.com"
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    sender: str = Field(description="A phone number (+1…) or a Messaging Service sid (MG…).")
    max_segments: int = Field(4, ge=1, le=10)


SECRETS = {"auth_token"}


def build_request(
    message: OutboundMessage, config: Config, status_callback: str | None
) -> tuple[str, dict[str, str]]:
    """``(url, form fields)``."""
    text = fit(message.content.text or message.content.body, config.max_segments)
    form = {"To": message.address, "Body": text}
    form["MessagingServiceSid" if config.sender.startswith("MG") else "From"] = config.sender
    if status_callback:
        form["StatusCallback"] = status_callback
    url = f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
    return url, form


_INVALID_NUMBER = {21211, 21214, 21217, 21401, 21407, 21421, 21612, 21614}


def classify_response(status: int, headers: Mapping[str, str], body: bytes) -> SendResult:
    try:
        doc = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        doc = {}
    if status in (200, 201):
        return SendResult(SendStatus.DELIVERED, provider_ref=doc.get("sid"))
    code = int(doc.get("code") or 0)
    reason = f"{code or status} {doc.get('message', '')}".strip()
    if code in _INVALID_NUMBER:
        return invalid(reason)
    if code == 21610:  # the recipient replied STOP: the carrier will refuse every message
        return permanent(f"unsubscribed by STOP: {reason}")
    if status in (401, 403) or code == 20003:
        return credentials(reason)
    throttled = status == 429 or code == 20429
    if throttled or status >= 500:
        return retry_later(reason, headers, throttled=throttled)
    return permanent(reason)


def callback_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's X-Twilio-Signature: HMAC-SHA1 over the URL and the sorted POST fields."""
    payload = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def callback_is_genuine(auth_token: str, url: str, params: Mapping[str, str], sig: str) -> bool:
    return hmac.compare_digest(callback_signature(auth_token, url, params), sig)


class TwilioSMSProvider:
    channel = Channel.SMS

    def __init__(self, name: str, config: Config, deps: ProviderDeps) -> None:
        self.name = name
        self._config = config
        self._callback = f"{deps.public_url.rstrip('/')}/v1/providers/{name}/status"
        credentials = f"{config.account_sid}:{config.auth_token.get_secret_value()}"
        self._auth = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
        self._session: aiohttp.ClientSession | None = None

    async def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        if self._session is None:
            self._session = http_session(allow_private=True, ca_file=self._config.ca_file)
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    async def _send_one(self, message: OutboundMessage) -> SendResult:
        assert self._session is not None
        url, form = build_request(message, self._config, self._callback)
        try:
            async with self._session.post(url, data=form, headers=self._auth) as response:
                body = await response.read()
                return classify_response(
                    response.status, {k.lower(): v for k, v in response.headers.items()}, body
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return connection_lost(exc)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def make(name: str, config: Config, deps: ProviderDeps) -> TwilioSMSProvider:
    return TwilioSMSProvider(name, config, deps)
