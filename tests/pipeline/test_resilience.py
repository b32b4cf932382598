"""Degradation against the look-alikes: breakers, failover, fallback, send rates, Retry-After
storms and stale work — with a clock the test moves."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from clarion import channels
from clarion.channels.config import stored
from clarion.clock import ManualClock
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from clarion.models import Channel, Platform, Priority, Routing
from clarion.resilience.breaker import BreakerState, Health
from clarion.runtime import Runtime
from clarion.stores.records import UserProfile
from clarion.types import UserId
from tests.pipeline.channel_steps import ANN, IOS, deliver, device, send, trail


@pytest.fixture
def rt_settings() -> dict[str, Any]:
    # A fixed 30-s probe here; the growing probe is tested in tests/resilience.
    return {"breaker_min_requests": 4, "breaker_first_probe_s": 30.0, "breaker_probe_s": 30.0}


async def phones(rt: Runtime, count: int) -> list[UserId]:
    users = [UserId(f"p{i}") for i in range(count)]
    for i, user in enumerate(users):
        await device(rt, user, "phone", Platform.IOS, f"{i + 1:064x}")
    return users


async def configure(rt: Runtime, name: str, doc: dict[str, Any]) -> None:
    await rt.stores.providers.put(name, stored(channels.parse(name, doc)), rt.clock.now())


async def state(rt: Runtime, provider: str) -> BreakerState:
    return (await rt.stores.provider_health.all()).get(provider, Health()).state


async def test_failover_to_the_secondary_while_the_primary_is_down_and_back(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await configure(rt, "apns_backup", fakes.secondary_apns_config())
    users = await phones(rt, 6)
    fakes.apns.behaviour.add(Rule(status=503))
    first = await send(rt, (Channel.PUSH,), recipients=users, target=None)
    await deliver(rt)
    assert await state(rt, "apns") is BreakerState.OPEN  # six of six failed
    clock.advance(5)
    await deliver(rt)  # the retries: the primary's breaker is open, the secondary takes them
    assert (len(fakes.apns.received), len(fakes.apns_backup.received)) == (0, 6)
    assert await trail(rt, first, "push", users[0]) == [
        (1, "failed", "retrying: Error"),
        (2, "delivered", None),
    ]
    fakes.apns.behaviour.clear()  # the primary recovers
    clock.advance(31)
    await send(rt, (Channel.PUSH,), recipients=users, target=None)
    await deliver(rt)  # one probe goes to the primary, the rest still to the secondary
    assert (len(fakes.apns.received), len(fakes.apns_backup.received)) == (1, 11)
    assert await state(rt, "apns") is BreakerState.HALF_OPEN
    clock.advance(11)
    await send(rt, (Channel.PUSH,), recipients=users, target=None)
    await deliver(rt)  # half-open: a fifth now, the rest held back briefly
    assert await state(rt, "apns") is BreakerState.CLOSED
    clock.advance(2)
    await deliver(rt)
    assert (len(fakes.apns.received), len(fakes.apns_backup.received)) == (7, 11)


async def test_an_open_breaker_with_no_secondary_falls_back_to_the_next_channel(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await rt.stores.users.put(UserProfile(ANN, email="ann@example.com", email_verified=True))
    opened = Health(state=BreakerState.OPEN, changed_at=clock.now(), probe_at=clock.now() + 30)
    await rt.stores.provider_health.update("apns", lambda _: (opened, None))
    event_id = await send(rt, (Channel.PUSH, Channel.EMAIL, Channel.IN_APP))
    await deliver(rt)
    assert len(fakes.apns.received) == 0
    assert len(fakes.smtp.received) == 1  # delivered something, at once
    assert await rt.stores.inbox.count_for_event(event_id) == 1
    assert await trail(rt, event_id, "push") == [
        (1, "failed", "unavailable: apns circuit open; falling back to email")
    ]
    assert await trail(rt, event_id, "email") == [(1, "delivered", None)]


async def test_a_dead_token_falls_back_and_is_retired(rt: Runtime, fakes: FakeProviders) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await rt.stores.users.put(UserProfile(ANN, email="ann@example.com", email_verified=True))
    fakes.apns.behaviour.add(Rule(status=400, body={"reason": "BadDeviceToken"}))
    event_id = await send(rt, (Channel.PUSH, Channel.EMAIL))
    await deliver(rt)
    assert len(fakes.smtp.received) == 1
    ((_, _, reason),) = await trail(rt, event_id, "push")
    assert reason == "invalid_address: BadDeviceToken; falling back to email"
    (phone,) = await rt.stores.devices.of_user(ANN)
    assert phone.state == "invalid"


async def test_people_of_one_batch_falling_back_at_different_attempts_all_get_there(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    ann, bob = await phones(rt, 2)
    for user in (ann, bob):
        profile = UserProfile(user, email=f"{user}@example.com", email_verified=True)
        await rt.stores.users.put(profile)
    dead = {"reason": "BadDeviceToken"}
    fakes.apns.behaviour.add(Rule(match=f"{1:064x}", status=400, body=dead))  # ann: now
    fakes.apns.behaviour.add(Rule(match=f"{2:064x}", status=503, times=1))  # bob: a retry,
    fakes.apns.behaviour.add(Rule(match=f"{2:064x}", status=400, body=dead))  # … then dead
    event_id = await send(rt, (Channel.PUSH, Channel.EMAIL), recipients=[ann, bob], target=None)
    await deliver(rt)
    clock.advance(5)
    await deliver(rt)
    assert sorted(r["to"][0] for r in fakes.smtp.received.all()) == [
        f"{ann}@example.com",
        f"{bob}@example.com",
    ]
    assert await trail(rt, event_id, "email", bob) == [(1, "delivered", None)]


async def test_first_routing_sends_one_channel_and_all_sends_each(
    rt: Runtime, fakes: FakeProviders
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await rt.stores.users.put(UserProfile(ANN, email="ann@example.com", email_verified=True))
    await send(rt, (Channel.EMAIL, Channel.PUSH))  # email first: the type's order decides
    await deliver(rt)
    assert (len(fakes.apns.received), len(fakes.smtp.received)) == (0, 1)
    await send(rt, (Channel.PUSH, Channel.EMAIL), routing=Routing.ALL)  # the dual-send
    await deliver(rt)
    assert (len(fakes.apns.received), len(fakes.smtp.received)) == (1, 2)


async def test_the_send_rate_is_never_exceeded_and_waiting_is_not_an_attempt(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await configure(rt, "apns", fakes.clarion_config()["apns"] | {"rate_per_s": 5})
    users = await phones(rt, 12)
    event_id = await send(rt, (Channel.PUSH,), recipients=users, target=None)
    sent = []
    for _ in range(4):
        await deliver(rt)
        sent.append(len(fakes.apns.received))
        clock.advance(1)
    assert sent == [5, 10, 12, 12]
    for user in users:
        assert await trail(rt, event_id, "push", user) == [(1, "delivered", None)]


async def test_a_429_storm_waits_for_retry_after_and_comes_back_spread_and_slower(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await configure(rt, "apns", fakes.clarion_config()["apns"] | {"rate_per_s": 40})
    users = await phones(rt, 40)
    fakes.apns.behaviour.add(
        Rule(status=429, body={"reason": "TooManyRequests"}, retry_after_s=10, times=40)
    )
    start = clock.now()
    for group in range(4):  # four events: four retry batches, each with its own jitter
        await send(rt, (Channel.PUSH,), recipients=users[group * 10 : group * 10 + 10], target=None)
    await deliver(rt)
    assert len(fakes.apns.received) == 0
    assert await state(rt, "apns") is BreakerState.CLOSED  # slow down ≠ down
    clock.advance(9.9)
    await deliver(rt)
    assert len(fakes.apns.received) == 0  # nothing before Retry-After
    arrivals: list[tuple[float, int]] = []
    for _ in range(60):
        clock.advance(0.25)
        before = len(fakes.apns.received)
        await deliver(rt)
        if len(fakes.apns.received) > before:
            arrivals.append((clock.now() - start, len(fakes.apns.received) - before))
    assert sum(n for _, n in arrivals) == 40
    assert len({at for at, _ in arrivals}) >= 3  # spread out, not one burst
    for at, _ in arrivals:  # retries ran at a share of a rate halved by the 429s
        in_a_second = sum(n for t, n in arrivals if at <= t < at + 1)
        assert in_a_second <= 20


async def test_nothing_stale_is_sent_after_a_wait(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await configure(rt, "apns", fakes.clarion_config()["apns"] | {"rate_per_s": 1})
    users = await phones(rt, 3)
    event_id = await send(rt, (Channel.PUSH,), ttl=2, recipients=users, target=None)
    await deliver(rt)
    assert len(fakes.apns.received) == 1
    clock.advance(5)  # the rest waited for the rate past the TTL
    await deliver(rt)
    assert len(fakes.apns.received) == 1
    outcomes = sorted([r[1:] for u in users for r in await trail(rt, event_id, "push", u)])
    assert outcomes == [("delivered", None), ("suppressed", "expired"), ("suppressed", "expired")]


async def test_with_no_other_channel_a_delivery_waits_for_the_probe_without_an_attempt(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    opened = Health(state=BreakerState.OPEN, changed_at=clock.now(), probe_at=clock.now() + 30)
    await rt.stores.provider_health.update("apns", lambda _: (opened, None))
    event_id = await send(rt, (Channel.PUSH,))
    await deliver(rt)
    assert len(fakes.apns.received) == 0
    clock.advance(40)
    await deliver(rt)  # it comes back as the probe, and the provider is back
    assert await trail(rt, event_id, "push") == [
        (1, "delivered", None),  # still the first attempt: waiting is not one
        (1, "held", "waiting: unavailable: apns circuit open"),
    ]
    assert await state(rt, "apns") is BreakerState.HALF_OPEN


async def test_an_outage_longer_than_the_retry_budget_is_waited_out_within_the_ttl(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    opened = Health(state=BreakerState.OPEN, changed_at=clock.now(), probe_at=clock.now() + 500)
    await rt.stores.provider_health.update("apns", lambda _: (opened, None))
    event_id = await send(rt, (Channel.PUSH,))  # P1: two retries within two minutes
    await deliver(rt)
    clock.advance(501)
    await deliver(rt)
    assert [r[1] for r in await trail(rt, event_id, "push")] == ["delivered", "held"]
    assert await rt.broker.dead_letters() == []


async def test_a_p0_waits_for_a_broken_provider_no_longer_than_its_budget_then_dead_letters(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    opened = Health(state=BreakerState.OPEN, changed_at=clock.now(), probe_at=clock.now() + 500)
    await rt.stores.provider_health.update("apns", lambda _: (opened, None))
    event_id = await send(rt, (Channel.PUSH,), Priority.P0)  # three retries within 60 s
    await deliver(rt)
    clock.advance(100)
    await deliver(rt)
    (_, failed), (_, held) = [r[1:] for r in await trail(rt, event_id, "push")]
    assert (held, failed) == (
        "waiting: unavailable: apns circuit open",
        "gave up waiting 100s: unavailable: apns circuit open",
    )
    (dead,) = await rt.broker.dead_letters()
    assert dead.topic == "push.p0"  # for an operator to replay once APNs is back


async def test_a_half_open_provider_that_fails_again_opens(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    half = Health(state=BreakerState.HALF_OPEN, changed_at=clock.now())
    await rt.stores.provider_health.update("apns", lambda _: (half, None))
    users = await phones(rt, 10)
    fakes.apns.behaviour.add(Rule(status=500))
    await send(rt, (Channel.PUSH,), recipients=users, target=None)
    await deliver(rt)
    health = (await rt.stores.provider_health.all())["apns"]
    assert health.state is BreakerState.OPEN
    assert health == replace(health, sent=0, failed=0)  # a fresh window for the new state
