from typing import Any

from clarion.models import EventState, EventStatus, Priority
from clarion.pipeline.messages import RecipientBatch, decode_batches
from clarion.runtime import Runtime
from clarion.testing import accept_ids, evaluate_stage, event, type_spec, users
from clarion.types import EventId, UserId
from clarion.worker import build_runner

LIKE = type_spec("like")


async def _deliver(runtime: Runtime, **kw: Any) -> tuple[EventId, EventStatus]:
    (event_id,) = await accept_ids(runtime, event(LIKE, now=runtime.clock.now(), **kw))
    await build_runner(runtime).drain()
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert status.state is EventState.COMPLETED
    return event_id, status


async def test_evaluate_suppresses_and_logs_the_reason(runtime: Runtime) -> None:
    prefs = runtime.stores.preferences
    now = runtime.clock.now()
    await prefs.put(UserId("quiet"), {"enabled": False}, now, "test")
    await prefs.put(UserId("nolikes"), {"types": {"like": {"enabled": False}}}, now, "test")
    await prefs.put(UserId("other"), {"types": {"comment": {"enabled": False}}}, now, "test")
    event_id, status = await _deliver(runtime, recipients=["quiet", "nolikes", "other", "plain"])
    assert (status.delivered, status.suppressed) == (2, 2)
    for user, reason in [("quiet", "master_off"), ("nolikes", "disabled_type")]:
        (record,) = await runtime.stores.deliveries.for_user(
            UserId(user), event_id=event_id, limit=5
        )
        assert (record.outcome, record.reason, record.channel) == ("suppressed", reason, "all")
    (delivered,) = await runtime.stores.deliveries.for_user(
        UserId("plain"), event_id=event_id, limit=5
    )
    assert delivered.outcome == "delivered"


async def test_evaluate_p0_bypasses_the_master_switch(runtime: Runtime) -> None:
    await runtime.stores.preferences.put(
        UserId("quiet"), {"enabled": False}, runtime.clock.now(), "test"
    )
    otp = type_spec("otp", Priority.P0)
    (event_id,) = await accept_ids(runtime, event(otp, now=runtime.clock.now(), target="quiet"))
    await build_runner(runtime).drain()
    assert await runtime.stores.inbox.count_for_event(event_id) == 1


async def test_evaluate_types_without_in_app_are_logged_as_no_channel(runtime: Runtime) -> None:
    from clarion.models import Channel

    push_only = type_spec("ping", channels=[Channel.PUSH])
    (event_id,) = await accept_ids(runtime, event(push_only, now=runtime.clock.now(), target="u"))
    await build_runner(runtime).drain()
    (record,) = await runtime.stores.deliveries.for_user(UserId("u"), event_id=event_id, limit=5)
    assert (record.channel, record.reason) == ("push", "no_channel: no active push device")


async def test_evaluate_sizes_its_claims_in_recipients(runtime: Runtime) -> None:
    stage = evaluate_stage(runtime)
    await accept_ids(runtime, event(LIKE, now=runtime.clock.now(), target="x"))
    (message,) = await runtime.broker.consume("evaluate.p1", limit=1)
    (small,) = decode_batches(message.body)
    await stage.handle([[RecipientBatch(small.header, "7", users(1000))]])
    assert stage.claim_limit == 2  # two full batches per claim leaves the rest to others
    await stage.handle([[RecipientBatch(small.header, "8", users(1))]])
    assert stage.claim_limit == 64  # tiny ones share a claim


async def test_ingest_packs_small_direct_events_into_few_messages(runtime: Runtime) -> None:
    now = runtime.clock.now()
    otp = type_spec("otp", Priority.P0)
    events = [event(otp, now=now, target=f"u{i}") for i in range(250)]
    ids = await accept_ids(runtime, *events, event(LIKE, now=now, target="v"))
    assert await runtime.broker.depth("evaluate.p0") == 3  # 100 + 100 + 50 recipients
    assert await runtime.broker.depth("evaluate.p1") == 1
    await build_runner(runtime).drain()
    for event_id in ids:
        status = await runtime.stores.events.status(event_id)
        assert status is not None
        assert (status.state, status.delivered) == (EventState.COMPLETED, 1)


async def test_a_redelivered_pack_records_nothing_twice(runtime: Runtime) -> None:
    now = runtime.clock.now()
    ids = await accept_ids(runtime, *[event(LIKE, now=now, target=f"u{i}") for i in range(10)])
    (message,) = await runtime.broker.consume("evaluate.p1", limit=1)
    stage = evaluate_stage(runtime)
    for _ in range(2):  # the second time is a redelivery after a crash before the ack
        result = await stage.handle([stage.decode(message)])
        for record in result.records:
            await record()
    for event_id in ids:
        assert await runtime.stores.inbox.count_for_event(event_id) == 1
        status = await runtime.stores.events.status(event_id)
        assert status is not None
        assert (status.batches_done, status.delivered) == (1, 1)


def test_people_are_grouped_by_what_reaches_them_in_their_order() -> None:
    from clarion.models import Channel
    from clarion.pipeline.route import by_reach
    from clarion.stores.records import NOWHERE, Reach

    push = Reach(frozenset({Channel.PUSH}), {})
    mail = Reach(frozenset({Channel.EMAIL}), {})
    people = [UserId(f"u{i}") for i in range(7)]
    reach = {people[0]: push, people[2]: mail, people[3]: push, people[5]: NOWHERE}
    groups = by_reach(people, reach)
    assert groups == {
        push: [people[0], people[3]],
        mail: [people[2]],
        NOWHERE: [people[1], people[4], people[5], people[6]],  # no entry, or NOWHERE
    }
    assert by_reach(people[:2], {people[0]: push, people[1]: push}) == {push: people[:2]}
    many = [Reach(frozenset({Channel.PUSH}), {Channel.SMS: f"why {n}"}) for n in range(20)]
    crowd = [UserId(f"c{n}") for n in range(41)]  # more kinds than are cut out one by one
    grouped = by_reach(crowd, {u: many[n % 20] for n, u in enumerate(crowd[:40])})
    assert grouped[NOWHERE] == [crowd[40]]
    assert grouped[many[3]] == [crowd[3], crowd[23]]


async def test_people_with_one_document_are_decided_apart_where_their_zones_differ(
    runtime: Runtime,
) -> None:
    """Quiet hours without a zone use each person's profile zone: one shared document,
    three outcomes."""
    from clarion.clock import ManualClock
    from clarion.stores.records import UserProfile

    assert isinstance(runtime.clock, ManualClock)
    runtime.clock.set(1_768_485_600.0)  # 2026-01-15 14:00 UTC: 23:00 in Tokyo, 15:00 in Paris
    now = runtime.clock.now()
    doc = {"quiet_hours": {"start": "22:00", "end": "07:00"}}
    for user, zone in [("tokyo", "Asia/Tokyo"), ("paris", "Europe/Paris"), ("sydney", None)]:
        await runtime.stores.preferences.put(UserId(user), doc, now, "test")
        if zone is not None:
            await runtime.stores.users.put(UserProfile(UserId(user), timezone=zone))
    (event_id,) = await accept_ids(
        runtime, event(LIKE, now=now, recipients=["tokyo", "paris", "sydney"])
    )
    await build_runner(runtime).drain()
    outcomes = {}
    for user in ("tokyo", "paris", "sydney"):
        (record,) = await runtime.stores.deliveries.for_user(
            UserId(user), event_id=event_id, limit=5
        )
        outcomes[user] = record.outcome
    assert outcomes == {"tokyo": "held", "paris": "delivered", "sydney": "delivered"}
