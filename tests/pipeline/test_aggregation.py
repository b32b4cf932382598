"""Aggregation through the whole pipeline, on every backend, with a clock the test moves:
the first like goes out at once, the rest are counted into one inbox entry, and one summary
goes out when the window ends — never "and 0 others", never a second summary."""

from __future__ import annotations

from typing import Any

from clarion.clock import ManualClock
from clarion.errors import AggregatesUnavailableError
from clarion.fakes.suite import FakeProviders
from clarion.models import Channel, Platform, Priority, TypeSpec
from clarion.pipeline.evaluate import EvaluateStage
from clarion.pipeline.switches import KillSwitchCache
from clarion.runtime import Runtime
from clarion.testing import accept_ids, event
from clarion.types import EventId
from tests.backends import rows
from tests.pipeline.channel_steps import ANN, IOS, deliver, device

LIKE = TypeSpec("like", Priority.P1, (Channel.PUSH, Channel.IN_APP), 3600, aggregate_s=60)


async def like(runtime: Runtime, *fans: str, spec: TypeSpec = LIKE, **kw: Any) -> list[EventId]:
    """One like on ANN's photo per fan, all in one request."""
    events = [
        event(spec, now=runtime.clock.now(), target=ANN, actor=fan, object="photo_1", **kw)
        for fan in fans
    ]
    return await accept_ids(runtime, *events)


def pushes(fakes: FakeProviders) -> list[str]:
    return [r["payload"]["aps"]["alert"]["body"] for r in fakes.apns.received.all()]


async def entries(runtime: Runtime) -> list[dict[str, Any]]:
    page = await runtime.stores.inbox.page(ANN, before=None, limit=10)
    return [{"count": i.aggregate.count if i.aggregate else 1, "read": i.read} for i in page.items]


async def test_fifty_likes_in_a_window_are_two_pushes_and_one_entry(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await like(rt, "alice")
    await deliver(rt)
    for n in range(49):  # the rest of the flood, in several claims
        await like(rt, f"fan{n:02d}")
        if n % 10 == 0:
            await deliver(rt)
    await deliver(rt)
    assert len(fakes.apns.received) == 1  # only the first so far
    assert await entries(rt) == [{"count": 50, "read": False}]
    clock.advance(59)
    await deliver(rt)
    assert len(fakes.apns.received) == 1
    clock.advance(2)  # the window ends: one summary
    await deliver(rt)
    assert pushes(fakes) == ["From alice · photo_1", "fan48, fan47 and 47 others"]
    first, summary = fakes.apns.received.all()
    assert first["headers"]["apns-collapse-id"] == summary["headers"]["apns-collapse-id"]
    clock.advance(600)
    await deliver(rt)
    assert len(fakes.apns.received) == 2  # nothing more
    page = await rt.stores.inbox.page(ANN, before=None, limit=10)
    (entry,) = page.items
    assert entry.aggregate is not None
    assert (entry.aggregate.count, entry.aggregate.actors) == (50, ("fan48", "fan47", "fan46"))


async def test_exactly_one_more_is_named_alone_never_and_zero_others(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await like(rt, "alice")
    await deliver(rt)
    await like(rt, "bob")
    await deliver(rt)
    clock.advance(61)
    await deliver(rt)
    assert pushes(fakes) == ["From alice · photo_1", "Also bob"]


async def test_a_lone_like_gets_no_summary_and_the_next_window_reuses_the_entry(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await like(rt, "alice")
    await deliver(rt)
    clock.advance(120)
    await deliver(rt)
    assert len(fakes.apns.received) == 1
    await rt.stores.inbox.mark_read(ANN, None, clock.now())
    await like(rt, "bob")  # a new window: goes out at once, into the same entry, unread again
    await deliver(rt)
    assert pushes(fakes) == ["From alice · photo_1", "From bob · photo_1"]
    assert await entries(rt) == [{"count": 2, "read": False}]


async def test_two_likes_in_the_same_instant_make_one_first_and_one_summary(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await like(rt, "alice", "bob", "carol")  # one request: one claim, one instant
    await deliver(rt)
    await deliver(rt)
    clock.advance(61)
    await deliver(rt)
    assert pushes(fakes) == ["From alice · photo_1", "carol and bob"]
    ((timers,),) = await rows(
        rt, "SELECT count(*) FROM batches WHERE batch_key LIKE '%@1.%' AND batch_key NOT LIKE '%/%'"
    )
    assert timers == 1  # one summary batch evaluated (its push is the "…/push" batch)


async def test_the_type_template_words_the_first_and_the_summary(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    body = (
        "{{ actors[0] }}{% if also %} also{% elif others %} and {{ others }} others{% endif %}"
        " liked your photo"
    )
    doc = {"variants": {"en": {"push": {"title": "Likes", "body": body}}}}
    await rt.stores.templates.put("likes", doc, clock.now(), "test")
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    for fans in (("alice",), ("bob",)):
        await like(rt, *fans, template="likes", template_version=1)
        await deliver(rt)
    clock.advance(61)
    await deliver(rt)
    await like(rt, "carol", template="likes", template_version=1)
    await like(rt, *(f"fan{n}" for n in range(5)), template="likes", template_version=1)
    await deliver(rt)
    clock.advance(61)
    await deliver(rt)
    assert pushes(fakes) == [
        "alice liked your photo",
        "bob also liked your photo",
        "carol liked your photo",
        "fan4 and 4 others liked your photo",
    ]


async def test_counted_likes_take_no_frequency_cap_places(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await rt.stores.preferences.put(ANN, {"frequency_caps": {"per_hour": 2}}, 0.0, "test")
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await like(rt, *(f"fan{n}" for n in range(20)))
    await deliver(rt)
    clock.advance(61)
    await deliver(rt)
    assert len(fakes.apns.received) == 2  # the first and the summary: both within the cap
    recent = await rt.stores.frequency.recent([ANN], clock.now() - 3600)
    assert len(recent[ANN]) == 2


async def test_without_the_windows_each_like_goes_out_on_its_own(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    class Away:
        async def join(self, requests: object, now: float) -> list[Any]:
            raise AggregatesUnavailableError("aggregation windows unavailable: refused")

        async def take(self, windows: object) -> list[Any]:
            raise AggregatesUnavailableError("aggregation windows unavailable: refused")

    s = rt.stores
    stage = EvaluateStage(
        s.preferences, s.deliveries, s.users, s.devices, s.frequency, Away(), s.digests,
        KillSwitchCache(s.kill_switches), clock, worker="test",
    )  # fmt: skip
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await like(rt, "alice", "bob", "carol")
    (message,) = await rt.broker.consume("evaluate.p1", limit=1)
    result = await stage.handle([stage.decode(message)])
    (record,) = result.records
    await record()
    page = await rt.stores.inbox.page(ANN, before=None, limit=10)
    assert len(page.items) == 3  # over-notify rather than lose
    assert len([o for o in result.outbound if o.topic == "push.p1"]) == 3
