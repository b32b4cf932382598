"""Email over SMTP to a real SMTP server (aiosmtpd) with STARTTLS."""

from __future__ import annotations

import aiosmtplib

from clarion.channels import smtp
from clarion.channels.base import Content, SendStatus
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from tests.channels.conftest import MakeProvider, message


async def test_send_multipart_mail_with_one_click_unsubscribe(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    mail = message("ann@example.com", unsubscribe_url="https://clarion.example/v1/unsubscribe/t")
    (result,) = await provider("smtp").send([mail])
    assert result.status is SendStatus.DELIVERED
    (seen,) = fakes.smtp.received.all()
    assert seen["tls"] is True  # STARTTLS, trusting the configured CA
    assert seen["to"] == ["ann@example.com"]
    assert seen["subject"] == "Ann replied"
    assert seen["text"].strip() == "Ann replied"
    assert seen["html"].strip() == "<p>Ann replied</p>"
    assert seen["headers"]["list-unsubscribe"] == "<https://clarion.example/v1/unsubscribe/t>"
    assert seen["headers"]["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"


async def test_transactional_mail_has_no_unsubscribe_header(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    await provider("smtp").send([message("ann@example.com")])
    (seen,) = fakes.smtp.received.all()
    assert "list-unsubscribe" not in seen["headers"]


async def test_subjects_cannot_inject_headers(provider: MakeProvider, fakes: FakeProviders) -> None:
    hostile = Content(subject="Hi\r\nBcc: victim@example.com\r\nX-Evil: 1", text="t")
    await provider("smtp").send([message("ann@example.com", content=hostile)])
    (seen,) = fakes.smtp.received.all()
    assert "bcc" not in seen["headers"]
    assert "x-evil" not in seen["headers"]
    assert seen["to"] == ["ann@example.com"]


async def test_5xx_bounces_and_4xx_is_transient(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    fakes.smtp.behaviour.add(Rule(match="gone@", status=550))
    fakes.smtp.behaviour.add(Rule(match="busy@", status=451))
    mailer = provider("smtp", connections=1)
    bounced, later, fine = await mailer.send(
        [message("gone@example.com"), message("busy@example.com"), message("ok@example.com")]
    )
    assert bounced.status is SendStatus.INVALID_ADDRESS
    assert bounced.reason.startswith("bounced: 550")
    assert later.status is SendStatus.TRANSIENT
    assert fine.status is SendStatus.DELIVERED  # the connection survived the refusals
    assert [m["to"] for m in fakes.smtp.received.all()] == [["ok@example.com"]]


def test_classify_errors() -> None:
    assert smtp.classify_error(aiosmtplib.SMTPResponseException(421, "down")).status is (
        SendStatus.TRANSIENT
    )
    assert smtp.classify_error(aiosmtplib.SMTPAuthenticationError(535, "no")).status is (
        SendStatus.CREDENTIALS
    )
    assert smtp.classify_error(ConnectionRefusedError()).status is SendStatus.TRANSIENT


async def test_close_returns_once_the_socket_is_closed(provider: MakeProvider) -> None:
    """After STARTTLS both sides say goodbye (close_notify) after QUIT is answered: close()
    waits for that, or a worker stopping right after leaves the socket open."""
    mailer = provider("smtp", connections=1)
    assert isinstance(mailer, smtp.SMTPProvider)
    (result,) = await mailer.send([message("ann@example.com")])
    assert result.status is SendStatus.DELIVERED
    (connection,) = mailer._connections  # the socket is not public
    assert connection._client is not None
    sock = connection._client.get_transport_info("socket")
    assert sock.fileno() != -1
    await mailer.close()
    assert sock.fileno() == -1
