"""Standard Webhooks signatures (https://www.standardwebhooks.com): ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``"{id}.{timestamp}.{body}"``. Several secrets sign at once while one is being rotated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"
TOLERANCE_S = 300


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def is_secret(value: str) -> bool:
    try:
        return value.startswith(PREFIX) and len(_key(value)) >= 16
    except ValueError:
        return False


def sign(msg_id: str, timestamp: int, body: bytes, signing_secrets: Sequence[str]) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), content, hashlib.sha256).digest()).decode()
        for s in signing_secrets
    )


def headers(
    msg_id: str, timestamp: int, body: bytes, signing_secrets: Sequence[str]
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, signing_secrets),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    header_map: dict[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """What a receiver does: is any v1 signature ours, and is the message fresh?"""
    try:
        timestamp = int(header_map["webhook-timestamp"])
        msg_id = header_map["webhook-id"]
        offered = header_map["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(msg_id, timestamp, body, [secret])
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)
