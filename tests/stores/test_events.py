"""The ingest transaction: dedup, rate limits, and all-or-nothing enqueue."""

from __future__ import annotations

import math

from clarion.clock import ManualClock
from clarion.models import EventState
from clarion.runtime import Runtime
from clarion.stores.records import Accepted, RateLimited
from clarion.testing import accept, event, type_spec
from clarion.types import EventId

LIKE = type_spec()


async def test_accept_records_the_event_and_enqueues_its_first_step(runtime: Runtime) -> None:
    e = event(LIKE, now=runtime.clock.now(), target="bob", object="photo_1")
    assert await accept(runtime, e) == [Accepted(e.event_id)]
    status = await runtime.stores.events.status(e.event_id)
    assert status is not None
    assert status.state is EventState.ACCEPTED
    assert (status.recipients, status.batches_total) == (1, 1)  # direct: no fan-out stage
    assert await runtime.broker.depth("evaluate.p1") == 1


async def test_accept_returns_the_original_id_for_a_repeated_key(runtime: Runtime) -> None:
    now = runtime.clock.now()
    first = event(LIKE, now=now, target="bob", object="photo_1")
    again = event(LIKE, now=now, target="bob", object="photo_1")
    await accept(runtime, first)
    assert await accept(runtime, again) == [Accepted(first.event_id, duplicate=True)]
    assert await runtime.stores.events.status(again.event_id) is None
    assert await runtime.broker.depth("evaluate.p1") == 1


async def test_accept_forgets_keys_after_their_window(runtime: Runtime, clock: ManualClock) -> None:
    first = event(LIKE, now=clock.now(), object="photo_1")
    await accept(runtime, first)
    clock.advance(3601)
    later = event(LIKE, now=clock.now(), object="photo_1")
    assert await accept(runtime, later) == [Accepted(later.event_id)]


async def test_accept_dedups_within_one_request(runtime: Runtime) -> None:
    now = runtime.clock.now()
    a = event(LIKE, now=now, idempotency_key="same")
    b = event(LIKE, now=now, idempotency_key="same", target="other")
    assert await accept(runtime, a, b) == [Accepted(a.event_id), Accepted(a.event_id, True)]


async def test_rate_limited_request_writes_nothing(runtime: Runtime) -> None:
    now = runtime.clock.now()
    events = [event(LIKE, now=now, object=f"p{i}") for i in range(3)]
    assert isinstance(await accept(runtime, *events[:2], rate_per_s=2), list)
    queued = await runtime.broker.depth("evaluate.p1")
    refused = await accept(runtime, events[2], rate_per_s=2)
    assert isinstance(refused, RateLimited)
    assert math.isclose(refused.retry_after_s, 0.5)
    assert await runtime.stores.events.status(events[2].event_id) is None
    assert await runtime.stores.events.count() == 2
    assert await runtime.broker.depth("evaluate.p1") == queued


async def test_duplicates_do_not_spend_rate(runtime: Runtime, clock: ManualClock) -> None:
    e = event(LIKE, now=clock.now(), object="p")
    await accept(runtime, e, rate_per_s=1)
    assert await accept(runtime, e, rate_per_s=1) == [Accepted(e.event_id, duplicate=True)]


async def test_a_request_larger_than_the_burst_can_never_pass(runtime: Runtime) -> None:
    now = runtime.clock.now()
    refused = await accept(
        runtime, *[event(LIKE, now=now, object=str(i)) for i in range(3)], rate_per_s=2
    )
    assert isinstance(refused, RateLimited)
    assert math.isinf(refused.retry_after_s)


async def test_status_of_an_unknown_event_is_none(runtime: Runtime) -> None:
    assert await runtime.stores.events.status(EventId("evt_nope")) is None


def test_suppressions_are_counted_by_bounded_reason_and_add_up() -> None:
    from clarion.models import Outcome
    from clarion.stores.records import ALL_CHANNELS, BatchResult, DeliveryOutcome
    from clarion.stores.rows import suppression_rows
    from clarion.types import Seq, UserId

    a, b = UserId("a"), UserId("b")
    first = BatchResult(Seq(7), "0", 6, inbox=[a, b])
    first.outcomes = [
        DeliveryOutcome(UserId("c"), ALL_CHANNELS, Outcome.SUPPRESSED, "disabled_type"),
        DeliveryOutcome(UserId("d"), ALL_CHANNELS, Outcome.SUPPRESSED, "aggregated: window 1"),
        DeliveryOutcome(UserId("e"), ALL_CHANNELS, Outcome.HELD, "held_quiet_hours"),
    ]
    first.suppressed = 3  # the two logged, and one no channel reaches (logged per channel)
    second = BatchResult(Seq(5), "0", 1)
    second.outcomes = [DeliveryOutcome(a, "push", Outcome.SUPPRESSED, "expired")]
    second.suppressed = 1
    rows = suppression_rows([first, second], [[a], []])  # b's entry lost to a newer one
    assert rows == [
        (5, "expired", 1),
        (7, "aggregated", 1),
        (7, "disabled_type", 1),
        (7, "no_channel", 1),
        (7, "superseded", 1),
    ]
