"""Email over SMTP (aiosmtplib), on a few long-lived connections.

Messages are multipart (text and HTML). Non-transactional mail carries ``List-Unsubscribe``
with a signed one-click URL and ``List-Unsubscribe-Post`` (RFC 8058). A 4xx answer is
transient; a 5xx answer is permanent and marks the address bounced, so it is skipped from
then on. Subjects cannot inject headers: line breaks are removed before the header is set.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import aiosmtplib
from pydantic import Field, SecretStr

from clarion.channels.base import (
    OutboundMessage,
    SendResult,
    SendStatus,
    connection_lost,
    credentials,
    invalid,
    transient,
)
from clarion.channels.config import ProviderConfig, ProviderDeps
from clarion.models import Channel


class Config(ProviderConfig):
    host: str
    port: int = Field(587, ge=1, le=65535)
    sender: str = Field(description="The From address, e.g. Clarion <no-reply@example.com>.")
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    implicit_tls: bool = Field(False, description="TLS from the first byte (port 465).")
    connections: int = Field(2, ge=1, le=16)
    timeout_s: float = Field(30.0, gt=0)


SECRETS = {"password"}


def one_line(value: str) -> str:
    return " ".join(value.split())


_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP  # readable in a raw mail dump, unlike base64


_WIRE = compat32.clone(linesep="\r\n", max_line_length=998)
"""CRLF as SMTP wants, and long headers (the unsubscribe URL) kept on one line."""


def _header(value: str) -> Any:
    """ASCII as is; anything else as an RFC 2047 encoded word."""
    return value if value.isascii() else Header(value, _UTF8)


def build_message(message: OutboundMessage, config: Config) -> Message:
    """The mail as a MIME tree (the classic ``email.mime`` API: a quarter of the CPU of
    ``EmailMessage`` with the modern policy, which showed as the top cost of sending)."""
    # The docs allow a Charset for _charset; typeshed only knows str.
    text = MIMEText(message.content.text or message.content.body, "plain", _UTF8)  # type: ignore[arg-type]
    email: Message = text
    if message.content.html:
        email = MIMEMultipart("alternative")
        email.attach(text)
        email.attach(MIMEText(message.content.html, "html", _UTF8))  # type: ignore[arg-type]
    email["From"] = _header(config.sender)
    email["To"] = message.address
    email["Subject"] = _header(one_line(message.content.subject or message.content.title))
    email["Date"] = formatdate(localtime=False)
    domain = config.sender.rsplit("@", 1)[-1].rstrip(">") or "clarion.local"
    email["Message-ID"] = make_msgid(idstring=message.id[:40], domain=domain)
    email["X-Clarion-Event"] = message.event_id
    if message.unsubscribe_url:
        email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return email


def classify_error(exc: Exception) -> SendResult:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        code = codes[0] if codes else 550
        text = exc.recipients[0].message if exc.recipients else ""
        return _by_code(code, text)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return credentials(f"SMTP auth: {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, exc.message)
    return connection_lost(exc)


def _by_code(code: int, text: str) -> SendResult:
    if 400 <= code < 500:
        return transient(f"{code} {text}".strip())
    return invalid(f"bounced: {code} {text}".strip())


_CLOSE_POLLS = 200
_CLOSE_POLL_S = 0.01


class _Connection:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._client: aiosmtplib.SMTP | None = None
        self.lock = asyncio.Lock()

    async def client(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        c = self._config
        tls = (
            ssl.create_default_context(cafile=c.ca_file) if (c.starttls or c.implicit_tls) else None
        )
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.implicit_tls,
            start_tls=c.starttls and not c.implicit_tls,
            tls_context=tls,
            timeout=c.timeout_s,
        )
        await client.connect()
        if c.username and c.password:
            await client.login(c.username, c.password.get_secret_value())
        self._client = client
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        protocol = client.protocol
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            client.close()
        # After STARTTLS the socket closes only once both sides said close_notify, after
        # quit() returned: wait for it (briefly), or a process or test ending right after
        # would leave the socket open.
        for _ in range(_CLOSE_POLLS):
            if protocol is None or protocol.transport is None:
                return
            await asyncio.sleep(_CLOSE_POLL_S)


class SMTPProvider:
    channel = Channel.EMAIL

    def __init__(self, name: str, config: Config, deps: ProviderDeps) -> None:
        self.name = name
        self._config = config
        self._connections = [_Connection(config) for _ in range(config.connections)]
        self._next = 0
        self._envelope_from = parseaddr(config.sender)[1]

    async def send(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Messages are spread over the connections; each connection sends in turn
        (SMTP is one conversation at a time)."""
        lanes: list[list[int]] = [[] for _ in self._connections]
        for index in range(len(messages)):
            lanes[(self._next + index) % len(lanes)].append(index)
        self._next = (self._next + len(messages)) % len(lanes)
        results: list[SendResult] = [transient("not sent")] * len(messages)

        async def run(lane: list[int], connection: _Connection) -> None:
            async with connection.lock:
                for index in lane:
                    results[index] = await self._send_one(connection, messages[index])

        await asyncio.gather(
            *(run(lane, c) for lane, c in zip(lanes, self._connections, strict=True))
        )
        return results

    async def _send_one(self, connection: _Connection, message: OutboundMessage) -> SendResult:
        try:
            client = await connection.client()
            email = build_message(message, self._config)
            errors, _ = await client.sendmail(
                self._envelope_from, [message.address], email.as_bytes(policy=_WIRE)
            )
        except aiosmtplib.SMTPException as exc:
            if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
                await connection.close()
            return classify_error(exc)
        except OSError as exc:
            await connection.close()
            return classify_error(exc)
        if errors:
            code, text = next(iter(errors.values()))
            return _by_code(code, text)
        return SendResult(SendStatus.DELIVERED, provider_ref=email["Message-ID"])

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()


def make(name: str, config: Config, deps: ProviderDeps) -> SMTPProvider:
    return SMTPProvider(name, config, deps)
