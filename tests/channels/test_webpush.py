"""Web Push: VAPID and RFC 8291 encryption checked by a push service that decrypts."""

from __future__ import annotations

import pytest

from clarion.channels import webpush
from clarion.channels.base import SendStatus
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from clarion.models import Priority
from tests.channels.conftest import MakeProvider, message


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (201, SendStatus.DELIVERED),
        (410, SendStatus.INVALID_ADDRESS),
        (404, SendStatus.INVALID_ADDRESS),
        (429, SendStatus.TRANSIENT),
        (503, SendStatus.TRANSIENT),
        (413, SendStatus.PERMANENT),
        (403, SendStatus.CREDENTIALS),
    ],
)
def test_classify_response(status: int, expected: SendStatus) -> None:
    assert webpush.classify_response(status, {}, b"").status is expected


async def test_send_encrypts_for_the_subscription_and_signs_with_vapid(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    subscription = fakes.webpush.subscribe()
    push = provider("webpush")
    (result,) = await push.send(
        [
            message(
                subscription["endpoint"],
                meta={"keys": subscription["keys"]},
                priority=Priority.P0,
                collapse_key="order/7",
            )
        ]
    )
    assert result.status is SendStatus.DELIVERED
    (seen,) = fakes.webpush.received.all()  # recorded only if VAPID checked and it decrypted
    assert seen["payload"]["title"] == "New comment"
    assert seen["payload"]["data"]["event_id"] == "evt_1"
    assert seen["headers"]["urgency"] == "high"
    assert seen["headers"]["topic"] == "order_7"
    assert seen["headers"]["content-encoding"] == "aes128gcm"


@pytest.mark.parametrize(
    ("status", "expected"), [(410, SendStatus.INVALID_ADDRESS), (429, SendStatus.TRANSIENT)]
)
async def test_send_maps_failures(
    provider: MakeProvider, fakes: FakeProviders, status: int, expected: SendStatus
) -> None:
    subscription = fakes.webpush.subscribe()
    fakes.webpush.behaviour.add(Rule(match="*", status=status, retry_after_s=9))
    (result,) = await provider("webpush").send(
        [message(subscription["endpoint"], meta={"keys": subscription["keys"]})]
    )
    assert result.status is expected
    if expected is SendStatus.TRANSIENT:
        assert result.retry_after_s == 9


async def test_private_endpoints_are_refused_unless_allowed(
    provider: MakeProvider, fakes: FakeProviders, tokens_db: object
) -> None:
    from clarion.backends.sqlite.stores.config import SqliteProviderTokenStore
    from clarion.channels.config import ProviderDeps
    from clarion.clock import SystemClock

    strict = ProviderDeps(
        SystemClock(),
        SqliteProviderTokenStore(tokens_db),  # type: ignore[arg-type]
        allow_private_targets=False,
    )
    subscription = fakes.webpush.subscribe()
    (result,) = await provider("webpush", deps_=strict).send(
        [message(subscription["endpoint"], meta={"keys": subscription["keys"]})]
    )
    assert result.status is SendStatus.INVALID_ADDRESS
    assert "refused" in result.reason
    assert len(fakes.webpush.received) == 0
