"""Latest-wins collapse through the pipeline, on every backend: the newest playback position
replaces the older one in the inbox, a late arrival is dropped, a queued older push is
skipped at send time — as ``superseded``."""

from __future__ import annotations

from typing import Any

from clarion.clock import ManualClock
from clarion.fakes.suite import FakeProviders
from clarion.models import Channel, Platform, Priority, TypeSpec
from clarion.runtime import Runtime
from clarion.stores.records import BatchResult, Collapsing
from clarion.testing import accept_ids, event
from clarion.types import EventId, Seq
from tests.backends import rows
from tests.pipeline.channel_steps import ANN, IOS, deliver, device

PLAYBACK = TypeSpec("playback", Priority.P1, (Channel.PUSH, Channel.IN_APP), 3600)


def position(at: float, seconds: int) -> Any:
    return event(
        PLAYBACK,
        now=at,
        target=ANN,
        object="show_42",
        collapse_key="show_42",
        payload={"title": "Resume", "body": f"at {seconds} s"},
    )


async def trail(rt: Runtime, event_id: EventId) -> list[tuple[str, str, str | None]]:
    found = await rt.stores.deliveries.for_user(ANN, event_id=event_id, limit=10)
    return sorted((r.channel, r.outcome, r.reason) for r in found)


async def test_the_newest_position_replaces_the_older_entry(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    first = await accept_ids(rt, position(clock.now(), 60))
    await deliver(rt)
    clock.advance(60)
    second = await accept_ids(rt, position(clock.now(), 120))
    await deliver(rt)
    page = await rt.stores.inbox.page(ANN, before=None, limit=10)
    assert [(i.event_id, i.body) for i in page.items] == [(second[0], "at 120 s")]
    assert page.unread_count == 1
    assert first != second


async def test_a_late_arrival_is_dropped_as_superseded(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    older = position(clock.now() - 30, 60)  # created first, but reaches Clarion second
    (newer,) = await accept_ids(rt, position(clock.now(), 90))
    await deliver(rt)
    (late,) = await accept_ids(rt, older)
    await deliver(rt)
    assert await trail(rt, late) == [("all", "suppressed", "superseded")]
    page = await rt.stores.inbox.page(ANN, before=None, limit=10)
    assert [i.event_id for i in page.items] == [newer]
    assert len(fakes.apns.received) == 1


async def test_a_queued_older_push_is_skipped_at_send_time(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    older, newer = await accept_ids(
        rt, position(clock.now(), 60), position(clock.now() + 1, 120)
    )  # one claim: both evaluated, both pushes queued
    await deliver(rt)
    (push,) = fakes.apns.received.all()
    assert push["payload"]["aps"]["alert"]["body"] == "at 120 s"
    assert push["headers"]["apns-collapse-id"] == "show_42"
    assert ("push", "suppressed", "superseded") in await trail(rt, older)
    assert ("push", "delivered", None) in await trail(rt, newer)
    assert ("in_app", "suppressed", "superseded") in await trail(rt, older)
    page = await rt.stores.inbox.page(ANN, before=None, limit=10)
    assert [i.event_id for i in page.items] == [newer]  # the older entry was replaced


async def test_two_commits_racing_with_two_versions_leave_the_newer(
    rt: Runtime, clock: ManualClock
) -> None:
    one, two = await accept_ids(rt, position(clock.now(), 60), position(clock.now() + 5, 65))
    seqs = dict(await rows(rt, "SELECT event_id, seq FROM events"))
    newer = BatchResult(
        Seq(seqs[two]), "x", 1, inbox=[ANN], collapse=Collapsing("show_42", clock.now() + 5, (ANN,))
    )
    older = BatchResult(
        Seq(seqs[one]), "x", 1, inbox=[ANN], collapse=Collapsing("show_42", clock.now(), (ANN,))
    )
    await rt.stores.deliveries.record_batches([newer], "w1", clock.now())
    await rt.stores.deliveries.record_batches([older], "w2", clock.now())  # the loser commits last
    page = await rt.stores.inbox.page(ANN, before=None, limit=10)
    assert [i.event_id for i in page.items] == [two]
    assert await rt.stores.deliveries.latest([(ANN, "show_42")]) == {
        (ANN, "show_42"): (Seq(seqs[two]), clock.now() + 5)
    }
