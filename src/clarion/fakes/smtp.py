"""A real SMTP server (aiosmtpd) with STARTTLS that records messages and refuses recipients
the way mail servers do: 4xx (try later) or 5xx (no such mailbox)."""

from __future__ import annotations

import ssl
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from clarion.fakes.behaviour import Behaviour, Recorder


class _Handler:
    def __init__(self, behaviour: Behaviour, received: Recorder) -> None:
        self._behaviour = behaviour
        self._received = received

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        rule = self._behaviour.decide(address)
        if rule is not None and rule.status >= 400:
            text = "4.3.0 Try again later" if rule.status < 500 else "5.1.1 No such user"
            return f"{rule.status} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        tls = session.ssl is not None
        # Parsing is the slow part: keep the bytes, parse when a test looks.
        self._received.add(
            {"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "tls": tls, "raw": raw}
        )
        return "250 Message accepted"


def parsed(item: dict[str, Any]) -> dict[str, Any]:
    """A received mail as tests read it: subject, headers, text and HTML parts."""
    mail: EmailMessage = message_from_bytes(item["raw"], policy=policy.default)
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    return {
        "from": item["from"],
        "to": item["to"],
        "tls": item["tls"],
        "at": item["at"],
        "subject": str(mail["Subject"]),
        "headers": {k.lower(): str(v).strip() for k, v in mail.items()},
        "text": text.get_content() if text else "",
        "html": html.get_content() if html else "",
    }


class FakeSMTP:
    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.behaviour = Behaviour()
        self.received = Recorder(view=parsed)
        self._tls = tls
        self._controller: Controller | None = None
        self.port = 0

    def start(self, port: int = 0) -> int:
        from clarion.launch import free_port

        self.port = port or free_port()
        self._controller = Controller(
            _Handler(self.behaviour, self.received),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self._tls,
            require_starttls=False,
        )
        self._controller.start()
        return self.port

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
