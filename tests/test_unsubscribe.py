"""Unsubscribe tokens: signed, scoped to one person and one thing, impossible to forge."""

from __future__ import annotations

import base64

import orjson
import pytest

from clarion.errors import InputError
from clarion.keyring import SigningKeys
from clarion.models import Channel
from clarion.types import UserId
from clarion.unsubscribe import UnsubscribeScope, make_token, read_token

KEYS = SigningKeys.parse("k1:" + "s" * 32)


def test_a_token_reads_back_its_scope() -> None:
    scope = UnsubscribeScope(UserId("ann"), type="promo", sender="shop")
    assert read_token(make_token(scope, KEYS), KEYS) == scope
    by_channel = UnsubscribeScope(UserId("ann"), channel=Channel.EMAIL)
    assert read_token(make_token(by_channel, KEYS), KEYS) == by_channel


def _tamper(token: str, **changes: object) -> str:
    payload, _, signature = token.partition(".")
    doc = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    doc.update(changes)
    forged = base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()
    return f"{forged}.{signature}"


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: _tamper(t, u="bob"),  # replay for another person
        lambda t: _tamper(t, t="security_alert"),  # widen to another type
        lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],  # flip the signature
        lambda t: t.split(".")[0],  # no signature
        lambda t: "garbage",
        lambda t: make_token(
            UnsubscribeScope(UserId("ann"), type="promo"), SigningKeys.parse("k1:" + "x" * 32)
        ),  # someone else's key
    ],
)
def test_forged_or_altered_tokens_are_refused(forge: object) -> None:
    token = make_token(UnsubscribeScope(UserId("ann"), type="promo"), KEYS)
    with pytest.raises(InputError):
        read_token(forge(token), KEYS)  # type: ignore[operator]


def test_keys_rotate_without_breaking_links_in_old_mail() -> None:
    old = make_token(UnsubscribeScope(UserId("ann"), type="promo"), KEYS)
    rotated = SigningKeys.parse("k2:" + "n" * 32 + ",k1:" + "s" * 32)
    assert read_token(old, rotated).user_id == "ann"
    new = make_token(UnsubscribeScope(UserId("ann"), type="promo"), rotated)
    assert orjson.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))["k"] == "k2"


def test_signing_keys_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        SigningKeys.parse("k1:short")
