"""The Provider seam: send a batch of messages, get one typed result per message.

Every provider module follows one shape: a frozen ``<Service>Config`` (secrets kept out of
``repr``), pure ``build_request`` / ``classify_response`` functions, and a class whose
``send`` builds, sends on a long-lived client and classifies, mapping transport exceptions
at that one boundary. Results are values, never a bare ``bool``:

    delivered          the provider took it
    transient          try again later (``retry_after_s`` when the provider said when)
    permanent          this message will never go through (payload too big, content refused)
    invalid_address    the token / address / endpoint is dead: stop using it
    credentials        our configuration is wrong (expired key, bad auth): alert an operator
                       and never blame the recipient's address for it
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Protocol

from clarion.models import Channel, Priority
from clarion.types import EventId, UserId


class SendStatus(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    INVALID_ADDRESS = "invalid_address"
    CREDENTIALS = "credentials"
    # Not answers from a provider: what the pipeline decided instead of sending.
    DEFERRED = "deferred"
    """Held back by the provider's send rate: comes back later, not counted as an attempt."""
    UNAVAILABLE = "unavailable"
    """The provider's breaker is open (and no secondary could take it): waits for it, not
    counted as an attempt."""
    UNCONFIGURED = "unconfigured"
    """No provider of the kind is configured (yet): waits for one, not counted as an
    attempt — a type can be registered, and its first event sent, before the provider."""


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    reason: str = ""
    retry_after_s: float | None = None
    provider_ref: str | None = None
    """The provider's id for the message (APNs apns-id, FCM name, Twilio sid)."""
    invalid_since: float | None = None
    """APNs 410: when the token stopped being valid (tokens registered later are kept)."""
    throttled: bool = False
    """The provider asked us to slow down (429): tighten the rate, do not count an error."""


DELIVERED = SendResult(SendStatus.DELIVERED)


def transient(reason: str, retry_after_s: float | None = None) -> SendResult:
    return SendResult(SendStatus.TRANSIENT, reason, retry_after_s)


def connection_lost(exc: BaseException) -> SendResult:
    """The request may not have reached the provider (refused, reset, timed out): retry."""
    return transient(f"connection: {type(exc).__name__} {exc}".strip())


def retry_later(reason: str, headers: Mapping[str, str], *, throttled: bool) -> SendResult:
    """A transient answer with the provider's ``Retry-After`` (seconds or an HTTP date)."""
    return SendResult(SendStatus.TRANSIENT, reason, retry_after(headers), throttled=throttled)


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def permanent(reason: str) -> SendResult:
    return SendResult(SendStatus.PERMANENT, reason)


def invalid(reason: str, since: float | None = None) -> SendResult:
    return SendResult(SendStatus.INVALID_ADDRESS, reason, invalid_since=since)


def credentials(reason: str) -> SendResult:
    return SendResult(SendStatus.CREDENTIALS, reason)


@dataclass(frozen=True, slots=True)
class Content:
    """What to say, rendered for one channel and one locale."""

    title: str = ""
    body: str = ""
    subject: str = ""
    text: str = ""
    html: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    """Machine-readable extras (event id, type, object): push data, webhook payload."""


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    id: str
    """Stable for one (event, user, address): the same on every retry (webhook-id, apns-id)."""
    event_id: EventId
    user_id: UserId
    address: str
    """Device token, web-push endpoint, email address, phone number or webhook URL."""
    content: Content
    priority: Priority
    expires_at: float
    collapse_key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Per-address extras: web-push keys, webhook secrets, when a token was registered."""
    unsubscribe_url: str | None = None
    """Set for non-transactional mail (List-Unsubscribe, RFC 8058)."""
    background: bool = False
    """Push: wake the app silently to refetch (APNs ``content-available``, an FCM data
    message) instead of showing anything (``live.critical``)."""


class Provider(Protocol):
    name: str
    channel: Channel

    async def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """One result per message, in order. Never raises for a single message's failure."""
        ...

    async def close(self) -> None: ...
