"""SMS: honest segment counting, the Twilio request, its error codes, signed callbacks."""

from __future__ import annotations

import pytest

from clarion.channels import sms_twilio
from clarion.channels.base import Content, SendStatus
from clarion.channels.sms_twilio import fit, segments
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from tests.channels.conftest import MakeProvider, message


@pytest.mark.parametrize(
    ("text", "encoding", "count"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),  # 2 x 153
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension: two septets each, 160 in all
        ("€" * 81, "GSM-7", 2),
        # 306 septets would fit 2 x 153, but the escape may not straddle: the € starts
        # segment 2, which then overflows into a third.
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),
        ("é" * 160, "GSM-7", 1),  # é is in the basic GSM-7 table
        ("ã" * 70, "UCS-2", 1),  # ã is not: the whole text becomes UCS-2
        ("ã" * 71, "UCS-2", 2),
        ("ã" * 134, "UCS-2", 2),  # 2 x 67
        ("😀" * 35, "UCS-2", 1),  # two UTF-16 units each
        ("😀" * 36, "UCS-2", 2),
        ("", "GSM-7", 0),
    ],
)
def test_segments(text: str, encoding: str, count: int) -> None:
    result = segments(text)
    assert (result.encoding, result.count) == (encoding, count)


def test_fit_cuts_to_the_limit_in_the_same_alphabet() -> None:
    cut = fit("a" * 1000, 2)
    assert segments(cut).count == 2
    assert cut.endswith("...")
    unicode_cut = fit("ã" * 500, 1)
    assert unicode_cut.endswith("…")
    assert segments(unicode_cut) == segments("ã" * 69 + "…")
    assert fit("short", 1) == "short"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, b'{"sid": "SM1", "status": "queued"}', SendStatus.DELIVERED),
        (400, b'{"code": 21211, "message": "Invalid To"}', SendStatus.INVALID_ADDRESS),
        (400, b'{"code": 21610, "message": "unsubscribed"}', SendStatus.PERMANENT),
        (401, b'{"code": 20003, "message": "Authenticate"}', SendStatus.CREDENTIALS),
        (429, b'{"code": 20429, "message": "Too Many"}', SendStatus.TRANSIENT),
        (503, b"", SendStatus.TRANSIENT),
    ],
)
def test_classify_response(status: int, body: bytes, expected: SendStatus) -> None:
    assert sms_twilio.classify_response(status, {}, body).status is expected


async def test_send_posts_the_message_with_a_status_callback(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    text = Content(text="Your code is 123456. " + "x" * 400)
    (result,) = await provider("sms_twilio", max_segments=2).send(
        [message("+15551234567", content=text)]
    )
    assert result.status is SendStatus.DELIVERED
    assert result.provider_ref
    assert result.provider_ref.startswith("SM")
    (seen,) = (
        fakes.sms_twilio.received.all()
        if hasattr(fakes, "sms_twilio")
        else (fakes.twilio.received.all())
    )
    assert seen["form"]["To"] == "+15551234567"
    assert seen["form"]["From"] == "+15550000000"
    assert seen["segments"] == 2  # cut to the configured limit, not sent as 4 parts
    assert (
        seen["form"]["StatusCallback"] == "https://clarion.example/v1/providers/sms_twilio/status"
    )


async def test_send_maps_errors_and_bad_credentials(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    fakes.twilio.behaviour.add(Rule(match="+1555000", status=400, body={"code": 21211}))
    (invalid,) = await provider("sms_twilio").send([message("+15550001111")])
    assert invalid.status is SendStatus.INVALID_ADDRESS
    (refused,) = await provider("sms_twilio", auth_token="wrong-token-entirely").send(
        [message("+15559998888")]
    )
    assert refused.status is SendStatus.CREDENTIALS


@pytest.mark.parametrize(
    ("caller", "signature"),
    [
        ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),  # Twilio's security docs, today
        ("+12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),  # the same example, older docs
    ],
)
def test_callback_signature_matches_twilios_published_examples(caller: str, signature: str) -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": caller,
        "Digits": "1234",
        "From": caller,
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert sms_twilio.callback_signature("12345", url, params) == signature
    assert sms_twilio.callback_is_genuine("12345", url, params, signature)
    assert not sms_twilio.callback_is_genuine("12345", url, params | {"Digits": "9"}, signature)
