"""Firebase Cloud Messaging, HTTP v1: one request per message over pooled HTTP/2, with an
OAuth2 access token minted from a service-account key (google-auth).

The legacy batch API no longer exists, so throughput comes from many concurrent streams.
UNREGISTERED, SENDER_ID_MISMATCH and the invalid-token form of INVALID_ARGUMENT retire the
token; THIRD_PARTY_AUTH_ERROR is our credentials problem and never touches tokens;
QUOTA_EXCEEDED, UNAVAILABLE and INTERNAL are retried, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import Field, SecretStr, field_validator

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
from clarion.channels.h2client import H2Pool, StreamLostError, client_tls
from clarion.models import Channel, Priority

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_TOKEN_MARGIN_S = 300


class Config(ProviderConfig):
    base_url: str = "https://fcm.googleapis.com"
    service_account: SecretStr = Field(
        description="The service-account key JSON; its token_uri is where tokens come from."
    )
    connections: int = Field(2, ge=1, le=16)

    @field_validator("service_account")
    @classmethod
    def _is_key(cls, value: SecretStr) -> SecretStr:
        try:
            doc = orjson.loads(value.get_secret_value())
        except orjson.JSONDecodeError:
            raise ValueError("not JSON: paste the service-account key file's contents") from None
        missing = {"project_id", "private_key", "client_email", "token_uri"} - doc.keys()
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        return value

    @property
    def account(self) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.service_account.get_secret_value())
        return doc


SECRETS = {"service_account"}


def build_request(
    message: OutboundMessage, project_id: str, access_token: str, now: float
) -> tuple[str, dict[str, str], bytes]:
    ttl = max(int(message.expires_at - now), 0)
    android: dict[str, Any] = {
        "priority": "NORMAL" if message.priority is Priority.P2 else "HIGH",
        "ttl": f"{ttl}s",
    }
    if message.collapse_key:
        android["collapse_key"] = message.collapse_key
    fields: dict[str, Any] = {
        "token": message.address,
        "data": {k: str(v) for k, v in message.content.data.items()},
        "android": android,
    }
    if not message.background:  # a data message alone wakes the app without showing a thing
        fields["notification"] = {"title": message.content.title, "body": message.content.body}
    body = {"message": fields}
    headers = {"authorization": f"Bearer {access_token}", "content-type": "application/json"}
    return f"/v1/projects/{project_id}/messages:send", headers, orjson.dumps(body)


def classify_response(status: int, headers: dict[str, str], body: bytes) -> SendResult:
    if status == 200:
        return SendResult(SendStatus.DELIVERED, provider_ref=_field(body, "name"))
    code, state, text = _error(body)
    reason = code or state or f"HTTP {status}"
    if code in ("UNREGISTERED", "SENDER_ID_MISMATCH") or (
        state == "INVALID_ARGUMENT" and _about_token(text)
    ):
        return invalid(reason)
    if code == "THIRD_PARTY_AUTH_ERROR" or status in (401, 403):
        return credentials(reason)
    throttled = code == "QUOTA_EXCEEDED" or status == 429
    if throttled or code in ("UNAVAILABLE", "INTERNAL") or status >= 500:
        return retry_later(reason, headers, throttled=throttled)
    return permanent(reason)


def _field(body: bytes, name: str) -> str | None:
    try:
        value = orjson.loads(body).get(name)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return None if value is None else str(value)


def _error(body: bytes) -> tuple[str, str, str]:
    try:
        error = orjson.loads(body)["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "", "", ""
    code = next((d.get("errorCode", "") for d in error.get("details", []) if "errorCode" in d), "")
    return str(code), str(error.get("status", "")), str(error.get("message", ""))


def _about_token(message: str) -> bool:
    lowered = message.lower()
    return "registration token" in lowered or "message.token" in lowered


class AccessToken:
    """An OAuth2 access token for the service account, refreshed shortly before it expires.
    google-auth signs the assertion and talks to ``token_uri`` (in a thread: it is sync)."""

    def __init__(self, config: Config) -> None:
        import google.oauth2.service_account

        credentials = google.oauth2.service_account.Credentials
        self._credentials = credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            config.account, scopes=[SCOPE]
        )
        self._ca_file = config.ca_file
        self._lock = asyncio.Lock()
        self._expires_at = 0.0

    async def get(self, *, force: bool = False) -> str:
        async with self._lock:
            if force or time.time() > self._expires_at - _TOKEN_MARGIN_S:
                await asyncio.to_thread(self._refresh)
            token: str = self._credentials.token
            return token

    def _refresh(self) -> None:
        import google.auth.transport.requests
        import requests

        session = requests.Session()
        if self._ca_file:
            # requests lets REQUESTS_CA_BUNDLE from the environment override a session's own
            # verify setting; a configured ca_file must win.
            session.trust_env = False
            session.verify = self._ca_file
        self._credentials.refresh(google.auth.transport.requests.Request(session))
        expiry = self._credentials.expiry
        self._expires_at = expiry.timestamp() if expiry else time.time() + 3000


class FCMProvider:
    channel = Channel.PUSH

    def __init__(self, name: str, config: Config, deps: ProviderDeps) -> None:
        self.name = name
        self._config = config
        self._deps = deps
        self._project = str(config.account["project_id"])
        self._token = AccessToken(config)
        self._pool = H2Pool(
            config.base_url, ssl_context=client_tls(config.ca_file), connections=config.connections
        )

    async def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        try:
            token = await self._token.get()
        except Exception as exc:  # the token endpoint is down or refuses our key
            return [credentials(f"OAuth token: {type(exc).__name__}: {exc}")] * len(messages)
        results = list(await asyncio.gather(*(self._send_one(m, token) for m in messages)))
        refused = [i for i, r in enumerate(results) if r.reason in ("UNAUTHENTICATED", "HTTP 401")]
        if refused:  # the token was revoked or rotated early: fetch a new one, resend those
            token = await self._token.get(force=True)
            again = await asyncio.gather(*(self._send_one(messages[i], token) for i in refused))
            for index, result in zip(refused, again, strict=True):
                results[index] = result
        return results

    async def _send_one(self, message: OutboundMessage, token: str) -> SendResult:
        try:
            path, headers, body = build_request(
                message, self._project, token, self._deps.clock.now()
            )
            response = await self._pool.request("POST", path, headers, body)
        except (StreamLostError, OSError, TimeoutError) as exc:
            return connection_lost(exc)
        return classify_response(response.status, response.headers, response.body)

    async def close(self) -> None:
        await self._pool.close()


def make(name: str, config: Config, deps: ProviderDeps) -> FCMProvider:
    return FCMProvider(name, config, deps)
