"""Recording batches (exactly once) and reading inboxes back.

In a fresh SQLite store, accepted events get seq 1, 2, 3 … in order; these tests use that.
"""

from __future__ import annotations

from clarion.clock import ManualClock
from clarion.models import Channel, EventState, Outcome
from clarion.runtime import Runtime
from clarion.stores.records import BatchResult, DeliveryOutcome, FanoutAdvance
from clarion.testing import accept_ids, event, type_spec
from clarion.types import EventId, Seq, UserId

LIKE = type_spec()
BOB = UserId("bob")


async def _events(runtime: Runtime, count: int) -> list[EventId]:
    """Follower events: their fan-out is still to do, so the tests drive it by hand."""
    now = runtime.clock.now()
    return await accept_ids(
        runtime,
        *[
            event(LIKE, now=now, actor="star", fan_out="followers", object=f"o{i}")
            for i in range(count)
        ],
    )


async def _finish_fanout(runtime: Runtime, seq: int, batches: int, recipients: int) -> None:
    await runtime.stores.events.advance(
        [FanoutAdvance(Seq(seq), 0, batches, recipients, finished=True)], runtime.clock.now()
    )


async def test_record_batches_writes_inbox_log_and_progress_once(runtime: Runtime) -> None:
    (event_id,) = await _events(runtime, 1)
    await _finish_fanout(runtime, 1, batches=1, recipients=3)
    result = BatchResult(
        Seq(1),
        "0",
        3,
        inbox=[UserId("a"), UserId("b")],
        outcomes=[DeliveryOutcome(UserId("c"), Channel.IN_APP, Outcome.SUPPRESSED, "master_off")],
        suppressed=1,
    )
    deliveries = runtime.stores.deliveries
    assert (await deliveries.record_batches([result], "w1", runtime.clock.now())).batches == 1
    assert (await deliveries.record_batches([result], "w2", runtime.clock.now())).batches == 0
    assert await deliveries.recorded([(Seq(1), "0"), (Seq(1), "1")]) == {(Seq(1), "0")}
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert (status.state, status.delivered, status.suppressed, status.batches_done) == (
        EventState.COMPLETED,
        2,
        1,
        1,
    )
    assert status.first_delivery_at is not None
    assert await runtime.stores.inbox.count_for_event(event_id) == 2
    trail = await deliveries.for_user(UserId("c"), event_id=event_id, limit=10)
    assert [(r.outcome, r.reason) for r in trail] == [("suppressed", "master_off")]


async def test_event_completes_only_when_fanout_finished_and_all_batches_done(
    runtime: Runtime,
) -> None:
    (event_id,) = await _events(runtime, 1)
    record = runtime.stores.deliveries.record_batches
    await record([BatchResult(Seq(1), "0", 1, inbox=[BOB])], "w", runtime.clock.now())
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert status.state is EventState.ACCEPTED
    await _finish_fanout(runtime, 1, batches=2, recipients=2)
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert status.state is EventState.FANNING_OUT
    await record([BatchResult(Seq(1), "1", 1, inbox=[UserId("al")])], "w", runtime.clock.now())
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert status.state is EventState.COMPLETED


async def test_fanout_checkpoint_is_compare_and_set(runtime: Runtime) -> None:
    await _events(runtime, 1)
    events = runtime.stores.events
    now = runtime.clock.now()
    await events.advance([FanoutAdvance(Seq(1), 0, 5, 500, finished=False)], now)
    await events.advance([FanoutAdvance(Seq(1), 0, 5, 500, finished=False)], now)  # stale copy
    position = (await events.positions([Seq(1)]))[Seq(1)]
    assert (position.next_batch, position.finished) == (5, False)


async def test_inbox_pages_newest_first_with_a_cursor(runtime: Runtime) -> None:
    await _events(runtime, 5)
    await runtime.stores.deliveries.record_batches(
        [BatchResult(Seq(s), "0", 1, inbox=[BOB]) for s in range(1, 6)], "w", runtime.clock.now()
    )
    inbox = runtime.stores.inbox
    first = await inbox.page(BOB, before=None, limit=2)
    assert [i.seq for i in first.items] == [5, 4]
    assert first.unread_count == 5
    second = await inbox.page(BOB, before=first.next_before, limit=2)
    third = await inbox.page(BOB, before=second.next_before, limit=2)
    assert [i.seq for i in second.items + third.items] == [3, 2, 1]
    assert third.next_before is None


async def test_mark_read_by_ids_and_all(runtime: Runtime, clock: ManualClock) -> None:
    await _events(runtime, 3)
    await runtime.stores.deliveries.record_batches(
        [BatchResult(Seq(s), "0", 1, inbox=[BOB]) for s in range(1, 4)], "w", clock.now()
    )
    inbox = runtime.stores.inbox
    assert await inbox.mark_read(BOB, [Seq(2), Seq(99)], clock.now()) == 1
    page = await inbox.page(BOB, before=None, limit=10)
    assert [i.read for i in page.items] == [False, True, False]
    assert await inbox.mark_read(BOB, None, clock.now()) == 2
    assert (await inbox.page(BOB, before=None, limit=10)).unread_count == 0
    assert await inbox.mark_read(UserId("stranger"), None, clock.now()) == 0


async def test_the_delivery_log_keeps_every_outcome_its_fields_and_their_order(
    runtime: Runtime,
) -> None:
    """Runs of alike outcomes are written as one group: nothing is merged or reordered."""
    (event_id,) = await _events(runtime, 1)
    a, b, c = UserId("a"), UserId("b"), UserId("c")
    suppressed = Outcome.SUPPRESSED
    result = BatchResult(
        Seq(1),
        "0",
        3,
        outcomes=[
            DeliveryOutcome(a, Channel.PUSH, suppressed, "master_off"),
            DeliveryOutcome(b, Channel.PUSH, suppressed, "master_off"),
            DeliveryOutcome(c, Channel.PUSH, Outcome.FAILED, "503", attempt=2, provider_ref="r1"),
            DeliveryOutcome(c, Channel.EMAIL, Outcome.DELIVERED, None, attempt=2),
            DeliveryOutcome(a, Channel.EMAIL, suppressed, "master_off"),
        ],
        suppressed=2,
    )
    deliveries = runtime.stores.deliveries
    await deliveries.record_batches([result], "w", runtime.clock.now())

    async def trail(user: UserId) -> list[tuple[str, int, str, str | None]]:
        found = await deliveries.for_user(user, event_id=event_id, limit=10)
        return [(r.channel, r.attempt, r.outcome, r.reason) for r in found]

    # Newest first.
    assert await trail(a) == [
        ("email", 1, "suppressed", "master_off"),
        ("push", 1, "suppressed", "master_off"),
    ]
    assert await trail(b) == [("push", 1, "suppressed", "master_off")]
    assert await trail(c) == [("email", 2, "delivered", None), ("push", 2, "failed", "503")]
    assert await deliveries.receipt("r1", "delivered", "receipt", runtime.clock.now())
    assert (await trail(c))[0] == ("push", 2, "delivered", "receipt")
