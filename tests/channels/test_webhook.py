"""The webhook channel and Standard Webhooks signatures."""

from __future__ import annotations

import time

import pytest

from clarion.channels import signing, webhook
from clarion.channels.base import SendStatus
from clarion.channels.ssrf import PrivateTargetError, check_target
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from tests.channels.conftest import MakeProvider, message

SECRET = signing.new_secret()


def test_signatures_verify_and_refuse_tampering_and_staleness() -> None:
    body = b'{"a": 1}'
    headers = signing.headers("msg_1", int(time.time()), body, [SECRET])
    assert signing.verify(SECRET, headers, body, now=time.time())
    assert not signing.verify(SECRET, headers, b'{"a": 2}', now=time.time())
    assert not signing.verify(signing.new_secret(), headers, body, now=time.time())
    assert not signing.verify(SECRET, headers, body, now=time.time() + 600)


def test_rotation_signs_with_both_secrets() -> None:
    new = signing.new_secret()
    headers = signing.headers("m", int(time.time()), b"{}", [new, SECRET])
    assert len(headers["webhook-signature"].split()) == 2
    assert signing.verify(SECRET, headers, b"{}", now=time.time())
    assert signing.verify(new, headers, b"{}", now=time.time())


async def test_send_signs_and_keeps_the_id_across_retries(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    fakes.webhooks.secrets["crm"] = SECRET
    fakes.webhooks.behaviour.add(Rule(match="crm", status=503, times=1))
    hook = provider("webhook")
    target = message(fakes.webhooks.url("crm"), meta={"secrets": [SECRET]})
    (first,) = await hook.send([target])
    (second,) = await hook.send([target])
    assert (first.status, second.status) == (SendStatus.TRANSIENT, SendStatus.DELIVERED)
    refused, accepted = fakes.webhooks.received.all()
    assert refused["headers"]["webhook-id"] == accepted["headers"]["webhook-id"] == target.id
    assert accepted["genuine"] is True
    assert accepted["body"]["data"]["title"] == "New comment"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(410, SendStatus.INVALID_ADDRESS), (500, SendStatus.TRANSIENT), (404, SendStatus.PERMANENT)],
)
def test_classify_response(status: int, expected: SendStatus) -> None:
    assert webhook.classify_response(status, {}, b"").status is expected


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",
        "https://127.0.0.1/x",
        "https://10.0.0.8/x",
        "https://localhost/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "ftp://example.com/x",
    ],
)
def test_private_and_plain_targets_are_refused(url: str) -> None:
    with pytest.raises(PrivateTargetError):
        check_target(url, allow_private=False)


def test_public_targets_pass() -> None:
    assert check_target("https://hooks.example.com/x", allow_private=False)
    assert check_target("http://127.0.0.1:8080/x", allow_private=True)
