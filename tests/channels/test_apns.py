"""APNs: the request, every answer's meaning, the shared provider token, against the fake."""

from __future__ import annotations

import orjson
import pytest

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores.config import SqliteProviderTokenStore
from clarion.channels import apns
from clarion.channels.base import SendStatus
from clarion.clock import ManualClock
from clarion.fakes.apns import unregistered
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from clarion.models import Priority
from tests.channels.conftest import MakeProvider, message

TOKEN = "ab" * 32


@pytest.mark.parametrize(
    ("status", "body", "expected", "reason"),
    [
        (200, b"", SendStatus.DELIVERED, ""),
        (
            410,
            b'{"reason": "Unregistered", "timestamp": 1700000000000}',
            SendStatus.INVALID_ADDRESS,
            "Unregistered",
        ),
        (400, b'{"reason": "BadDeviceToken"}', SendStatus.INVALID_ADDRESS, "BadDeviceToken"),
        (
            400,
            b'{"reason": "DeviceTokenNotForTopic"}',
            SendStatus.INVALID_ADDRESS,
            "DeviceTokenNotForTopic",
        ),
        (
            403,
            b'{"reason": "ExpiredProviderToken"}',
            SendStatus.CREDENTIALS,
            "ExpiredProviderToken",
        ),
        (
            403,
            b'{"reason": "InvalidProviderToken"}',
            SendStatus.CREDENTIALS,
            "InvalidProviderToken",
        ),
        (413, b'{"reason": "PayloadTooLarge"}', SendStatus.PERMANENT, "PayloadTooLarge"),
        (429, b'{"reason": "TooManyRequests"}', SendStatus.TRANSIENT, "TooManyRequests"),
        (
            429,
            b'{"reason": "TooManyProviderTokenUpdates"}',
            SendStatus.TRANSIENT,
            "TooManyProviderTokenUpdates",
        ),
        (500, b'{"reason": "InternalServerError"}', SendStatus.TRANSIENT, "InternalServerError"),
        (503, b'{"reason": "ServiceUnavailable"}', SendStatus.TRANSIENT, "ServiceUnavailable"),
        (400, b'{"reason": "BadTopic"}', SendStatus.PERMANENT, "BadTopic"),
    ],
)
def test_classify_response(status: int, body: bytes, expected: SendStatus, reason: str) -> None:
    result = apns.classify_response(status, {"apns-id": "x"}, body)
    assert (result.status, result.reason) == (expected, reason)


def test_410_carries_when_the_token_died() -> None:
    result = apns.classify_response(410, {}, orjson.dumps(unregistered(1_700_000_000)))
    assert result.invalid_since == 1_700_000_000


def test_build_request_sets_apns_headers_and_fits_the_payload_limit() -> None:
    config = apns.Config(team_id="TEAM000001", key_id="KEY0000001", private_key="x", topic="app")
    long = message(
        TOKEN,
        priority=Priority.P2,
        collapse_key="post_1",
        expires_at=2_000_000_000.0,
        content=message(TOKEN).content.__class__(title="t", body="é" * 5000),
    )
    path, headers, body = apns.build_request(long, config, "jwt")
    assert path == f"/3/device/{TOKEN}"
    assert headers["apns-priority"] == "5"
    assert headers["apns-expiration"] == "2000000000"
    assert headers["apns-collapse-id"] == "post_1"
    assert headers["authorization"] == "bearer jwt"
    assert len(body) <= apns.MAX_PAYLOAD
    assert orjson.loads(body)["aps"]["alert"]["body"].endswith("…")
    _, urgent, _ = apns.build_request(message(TOKEN, priority=Priority.P0), config, "jwt")
    assert urgent["apns-priority"] == "10"


async def test_send_delivers_with_a_verified_provider_token(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    (result,) = await provider("apns").send([message(TOKEN, collapse_key="c1")])
    assert result.status is SendStatus.DELIVERED
    assert result.provider_ref
    (seen,) = fakes.apns.received.all()  # recorded only after the JWT checked out
    assert seen["token"] == TOKEN
    assert seen["headers"]["apns-topic"] == "com.example.clarion"
    assert seen["headers"]["apns-collapse-id"] == "c1"
    assert seen["payload"]["aps"]["alert"] == {"title": "New comment", "body": "Ann replied to you"}
    assert seen["payload"]["event_id"] == "evt_1"


@pytest.mark.parametrize(
    ("rule", "status"),
    [
        (Rule(status=410, body=unregistered(1_700_000_000)), SendStatus.INVALID_ADDRESS),
        (Rule(status=400, body={"reason": "BadDeviceToken"}), SendStatus.INVALID_ADDRESS),
        (
            Rule(status=429, body={"reason": "TooManyRequests"}, retry_after_s=7),
            SendStatus.TRANSIENT,
        ),
        (Rule(status=503, body={"reason": "ServiceUnavailable"}), SendStatus.TRANSIENT),
        (Rule(drop=True), SendStatus.TRANSIENT),
    ],
)
async def test_send_maps_every_failure(
    provider: MakeProvider, fakes: FakeProviders, rule: Rule, status: SendStatus
) -> None:
    fakes.apns.behaviour.add(rule)
    (result,) = await provider("apns").send([message(TOKEN)])
    assert result.status is status
    if rule.retry_after_s:
        assert result.retry_after_s == 7


async def test_a_token_apple_calls_expired_is_a_credentials_problem(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    fakes.apns.clock_offset_s = 3700  # our fresh token looks more than an hour old to Apple
    (result,) = await provider("apns").send([message(TOKEN)])
    assert (result.status, result.reason) == (SendStatus.CREDENTIALS, "ExpiredProviderToken")


async def test_many_streams_survive_goaway_every_few_requests(
    provider: MakeProvider, fakes: FakeProviders
) -> None:
    push = provider("apns")
    for server in fakes._servers:
        server.max_requests_per_connection = 20
    try:
        results = await push.send([message(f"{i:064x}") for i in range(200)])
    finally:
        for server in fakes._servers:
            server.max_requests_per_connection = None
    assert {r.status for r in results} == {SendStatus.DELIVERED}
    assert len(fakes.apns.received) == 200


async def test_provider_token_is_shared_and_renewed_in_apples_window(
    tokens_db: SqliteDatabase,
) -> None:
    private, _ = __import__("clarion.fakes.apns", fromlist=["x"]).new_signing_key()
    config = apns.Config(
        team_id="TEAM000001", key_id="KEY0000001", private_key=private, topic="app"
    )
    store = SqliteProviderTokenStore(tokens_db)
    clock = ManualClock(1_800_000_000)
    one = apns.SharedProviderToken("apns", config, store)
    two = apns.SharedProviderToken("apns", config, store)  # another worker
    first = await one.get(clock.now())
    assert await two.get(clock.now() + 60) == first  # shared, not re-signed
    clock.advance(5 * 60)
    # Called stale within 20 minutes: Apple would refuse a renewal, so none is made.
    assert await one.get(clock.now(), stale=first) == first
    clock.advance(34 * 60)  # 39 minutes
    assert await one.get(clock.now()) == first  # under 40 minutes: kept
    clock.advance(2 * 60)  # 41 minutes: renewed, once, by whichever worker comes first
    renewed = await two.get(clock.now())
    assert renewed != first
    assert await one.get(clock.now()) == renewed
