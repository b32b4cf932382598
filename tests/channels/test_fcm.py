"""FCM HTTP v1: OAuth2 from the service-account key, FCM's error codes, against the fake."""

from __future__ import annotations

import orjson
import pytest

from clarion.channels import fcm
from clarion.channels.base import SendStatus
from clarion.fakes.behaviour import Rule
from clarion.fakes.fcm import fcm_error
from clarion.fakes.suite import FakeProviders
from tests.channels.conftest import MakeProvider, message


def error(status: int, state: str, code: str | None = None, text: str = "") -> bytes:
    return orjson.dumps(fcm_error(status, state, code, text))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, error(404, "NOT_FOUND", "UNREGISTERED"), SendStatus.INVALID_ADDRESS),
        (403, error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), SendStatus.INVALID_ADDRESS),
        (
            400,
            error(
                400,
                "INVALID_ARGUMENT",
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
            ),
            SendStatus.INVALID_ADDRESS,
        ),
        (
            400,
            error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value at message.ttl"),
            SendStatus.PERMANENT,
        ),
        (401, error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), SendStatus.CREDENTIALS),
        (429, error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), SendStatus.TRANSIENT),
        (503, error(503, "UNAVAILABLE", "UNAVAILABLE"), SendStatus.TRANSIENT),
        (500, error(500, "INTERNAL", "INTERNAL"), SendStatus.TRANSIENT),
    ],
)
def test_classify_response(status: int, body: bytes, expected: SendStatus) -> None:
    assert fcm.classify_response(status, {}, body).status is expected


def test_retry_after_is_honoured() -> None:
    result = fcm.classify_response(429, {"retry-after": "30"}, error(429, "X", "QUOTA_EXCEEDED"))
    assert result.retry_after_s == 30


async def test_send_gets_a_token_and_delivers(provider: MakeProvider, fakes: FakeProviders) -> None:
    (result,) = await provider("fcm").send([message("fcm-token-1", collapse_key="k")])
    assert result.status is SendStatus.DELIVERED
    assert result.provider_ref
    assert result.provider_ref.startswith("projects/clarion-fake/messages/")
    (seen,) = fakes.fcm.received.all()
    assert seen["message"]["token"] == "fcm-token-1"
    assert seen["message"]["notification"] == {"title": "New comment", "body": "Ann replied to you"}
    assert seen["message"]["android"]["collapse_key"] == "k"


async def test_send_fetches_a_new_token_when_the_old_one_is_refused(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    push = provider("fcm")
    await push.send([message("t1")])
    issued = fakes.fcm.tokens_issued
    fakes.fcm.revoke_tokens()
    (result,) = await push.send([message("t2")])
    assert result.status is SendStatus.DELIVERED
    assert fakes.fcm.tokens_issued == issued + 1


@pytest.mark.parametrize(
    ("rule", "status"),
    [
        (
            Rule(status=404, body=fcm_error(404, "NOT_FOUND", "UNREGISTERED")),
            SendStatus.INVALID_ADDRESS,
        ),
        (
            Rule(status=401, body=fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")),
            SendStatus.CREDENTIALS,
        ),
        (
            Rule(status=503, body=fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), retry_after_s=11),
            SendStatus.TRANSIENT,
        ),
    ],
)
async def test_send_maps_failures(
    provider: MakeProvider, fakes: FakeProviders, rule: Rule, status: SendStatus
) -> None:
    fakes.fcm.behaviour.add(rule)
    (result,) = await provider("fcm").send([message("tok")])
    assert result.status is status


def test_a_service_account_without_its_key_is_refused() -> None:
    with pytest.raises(ValueError, match="private_key"):
        fcm.Config(service_account='{"project_id": "p", "client_email": "e", "token_uri": "u"}')
