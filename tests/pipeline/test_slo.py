"""``clarion slo``'s attribution from real trails, on every backend: in time; late on the
first attempt (the platform's); expired (the platform's); late after a provider's 503
(the provider's); held by quiet hours (on purpose, not counted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clarion.cli.slo import _priority
from clarion.clock import ManualClock
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from clarion.models import Channel, Platform, Priority
from clarion.runtime import Runtime
from tests.pipeline.channel_steps import ANN, IOS, deliver, device, send


async def test_every_miss_is_someones(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    since = clock.now()
    await send(rt, (Channel.IN_APP,), Priority.P0)
    await deliver(rt)  # at once: in time
    await send(rt, (Channel.IN_APP,), Priority.P0)
    clock.advance(5)
    await deliver(rt)  # five seconds in the queues: the platform's
    await send(rt, (Channel.IN_APP,), Priority.P1, ttl=1)
    clock.advance(2)
    await deliver(rt)  # expired before it went: the platform's
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    fakes.apns.behaviour.add(Rule(status=503, times=1))
    await send(rt, (Channel.PUSH,), Priority.P1)
    await deliver(rt)
    clock.advance(30)
    await deliver(rt)  # the retry after the 503, 30 s late: the provider's
    now = datetime.fromtimestamp(clock.now(), UTC)
    window = {"start": f"{now:%H:%M}", "end": f"{now + timedelta(hours=2):%H:%M}"}
    quiet = {"quiet_hours": window | {"timezone": "UTC"}}
    await rt.stores.preferences.put(ANN, quiet, clock.now(), "test")
    await send(rt, (Channel.IN_APP,), Priority.P1)
    await deliver(rt)
    clock.advance(3 * 3600)
    await deliver(rt)  # held two hours on purpose: not counted either way
    await send(rt, (Channel.IN_APP,), Priority.P1, ttl=60)
    clock.advance(120)
    await deliver(rt)  # past its TTL with no hold: the platform's

    counts = await rt.stores.deliveries.slo_counts(since, clock.now() + 1)
    p0, p1, _ = (_priority(c) for c in counts)
    assert (p0["in_time"], p0["late_platform"], p0["counted"]) == (1, 1, 2)
    assert p0["share"] == 0.5
    assert p0["met"] is False
    assert (p1["expired"], p1["late_provider"], p1["deferred"]) == (2, 1, 1)
    assert (p1["platform"], p1["provider"]) == (2, 1)
