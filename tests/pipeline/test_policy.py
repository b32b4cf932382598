"""Delivery policy through the pipeline, with a clock the test moves (never sleeps)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import pytest

from clarion.clock import ManualClock
from clarion.config import Settings
from clarion.errors import CountsUnavailableError
from clarion.models import EventState, FanOut, Priority, TypeSpec
from clarion.pipeline.evaluate import EvaluateStage
from clarion.pipeline.switches import KillSwitchCache
from clarion.policy.frequency import CapCheck
from clarion.policy.killswitch import KillKind, KillSwitch
from clarion.runtime import Runtime, open_runtime
from clarion.stores.records import DeliveryRecord
from clarion.testing import accept_ids, event, type_spec, users
from clarion.types import EventId, UserId
from clarion.worker import build_runner
from tests.backends import rows

LIKE = type_spec("like", Priority.P1)
PROMO = type_spec("promo", Priority.P2, default_enabled=True)
OTP = type_spec("otp", Priority.P0, mandatory=True)
BOB = UserId("bob")


def at(
    clock: ManualClock, year: int, month: int, day: int, hour: int, minute: int, second: int = 0
) -> None:
    clock.set(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


async def prefs(runtime: Runtime, user: UserId, **doc: object) -> None:
    await runtime.stores.preferences.put(user, dict(doc), runtime.clock.now(), "test")


async def send(runtime: Runtime, spec: TypeSpec = LIKE, **fields: Any) -> EventId:
    fields.setdefault("target", BOB)
    fields.setdefault("object", secrets.token_hex(4))
    (event_id,) = await accept_ids(runtime, event(spec, now=runtime.clock.now(), **fields))
    return event_id


async def drain(runtime: Runtime) -> None:
    await build_runner(runtime).drain()


async def trail(runtime: Runtime, event_id: EventId, user: UserId = BOB) -> list[DeliveryRecord]:
    return await runtime.stores.deliveries.for_user(user, event_id=event_id, limit=10)


async def inbox_count(runtime: Runtime, event_id: EventId) -> int:
    return await runtime.stores.inbox.count_for_event(event_id)


QUIET = {"start": "22:00", "end": "08:00", "timezone": "UTC"}


async def test_p1_in_quiet_hours_is_held_then_delivered_when_the_window_ends(
    runtime: Runtime, clock: ManualClock
) -> None:
    at(clock, 2026, 6, 1, 23, 0)
    await prefs(runtime, BOB, quiet_hours=QUIET)
    event_id = await send(runtime)
    await drain(runtime)
    assert await inbox_count(runtime, event_id) == 0
    assert [(r.outcome, r.reason) for r in await trail(runtime, event_id)] == [
        ("held", "held_quiet_hours")
    ]
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert (status.state, status.held) == (EventState.ACCEPTED, 1)

    at(clock, 2026, 6, 2, 7, 59)
    await drain(runtime)
    assert await inbox_count(runtime, event_id) == 0  # still quiet: not released early
    at(clock, 2026, 6, 2, 8, 0)
    await drain(runtime)
    assert await inbox_count(runtime, event_id) == 1
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert (status.state, status.held, status.delivered) == (EventState.COMPLETED, 0, 1)


async def test_quiet_hours_drop_p2_and_let_p0_through(runtime: Runtime, clock: ManualClock) -> None:
    at(clock, 2026, 6, 1, 1, 0)
    await prefs(runtime, BOB, quiet_hours=QUIET)
    promo = await send(runtime, PROMO)
    otp = await send(runtime, OTP)
    await drain(runtime)
    assert [r.reason for r in await trail(runtime, promo)] == ["quiet_hours_dropped"]
    assert await inbox_count(runtime, otp) == 1


async def test_quiet_hours_are_checked_when_delivered_not_when_enqueued(
    runtime: Runtime, clock: ManualClock
) -> None:
    at(clock, 2026, 6, 1, 21, 59)
    await prefs(runtime, BOB, quiet_hours=QUIET)
    event_id = await send(runtime)  # enqueued a minute before quiet hours
    at(clock, 2026, 6, 1, 22, 1)  # a worker only gets to it now
    await drain(runtime)
    assert [r.outcome for r in await trail(runtime, event_id)] == ["held"]


async def test_quiet_hours_in_the_profile_zone_across_a_dst_change(
    runtime: Runtime, clock: ManualClock
) -> None:
    from clarion.stores.records import UserProfile

    await runtime.stores.users.put(UserProfile(BOB, timezone="America/New_York"))
    await prefs(runtime, BOB, quiet_hours={"start": "22:00", "end": "08:00"})
    at(clock, 2026, 11, 1, 3, 0)  # 23:00 EDT, the night clocks fall back
    event_id = await send(runtime)
    await drain(runtime)
    at(clock, 2026, 11, 1, 12, 30)  # 07:30 EST: an hour later than 07:30 EDT would be
    await drain(runtime)
    assert await inbox_count(runtime, event_id) == 0
    at(clock, 2026, 11, 1, 13, 0)  # 08:00 EST
    await drain(runtime)
    assert await inbox_count(runtime, event_id) == 1


async def test_hourly_cap_at_its_boundary_delays_p1_and_drops_p2(
    runtime: Runtime, clock: ManualClock
) -> None:
    at(clock, 2026, 6, 1, 12, 0)
    await prefs(runtime, BOB, frequency_caps={"per_hour": 2})
    first = await send(runtime)
    clock.advance(60)
    second = await send(runtime)
    await drain(runtime)
    assert [await inbox_count(runtime, e) for e in (first, second)] == [1, 1]
    clock.advance(60)
    third = await send(runtime)
    promo = await send(runtime, PROMO)
    otp = await send(runtime, OTP)
    await drain(runtime)
    assert [(r.outcome, r.reason) for r in await trail(runtime, third)] == [("held", "freq_cap")]
    assert [r.reason for r in await trail(runtime, promo)] == ["freq_cap"]
    assert await inbox_count(runtime, otp) == 1  # P0: never capped (and it counts)
    at(clock, 2026, 6, 1, 12, 59, 59)
    await drain(runtime)
    assert await inbox_count(runtime, third) == 0
    at(clock, 2026, 6, 1, 13, 1)  # the second notification is an hour old now
    await drain(runtime)
    assert await inbox_count(runtime, third) == 1


async def test_daily_cap_drops_p1(runtime: Runtime, clock: ManualClock) -> None:
    at(clock, 2026, 6, 1, 8, 0)
    await prefs(runtime, BOB, frequency_caps={"per_day": 2})
    sent = []
    for _ in range(3):
        sent.append(await send(runtime))
        clock.advance(2 * 3600)
        await drain(runtime)
    assert [await inbox_count(runtime, e) for e in sent] == [1, 1, 0]
    assert [r.reason for r in await trail(runtime, sent[2])] == ["freq_cap"]


async def test_caps_hold_when_a_persons_notifications_arrive_in_one_claim(
    runtime: Runtime, clock: ManualClock
) -> None:
    hourly, daily = users(30, "h"), users(10, "d")
    for user in hourly:
        await prefs(runtime, user, frequency_caps={"per_hour": 3})
    for user in daily:
        await prefs(runtime, user, frequency_caps={"per_day": 2})
    people = hourly + daily
    # 320 events in one request, people interleaved: one evaluation message of 320
    # single-recipient batches (batch_size is 100, so four messages; all in one claim).
    batch = [
        event(LIKE, now=clock.now(), target=user, object=f"p{n}")
        for n in range(8)
        for user in people
    ]
    await accept_ids(runtime, *batch)
    await drain(runtime)
    got = await runtime.stores.frequency.recent(people, clock.now() - 60)
    assert {u: len(got.get(u, [])) for u in people} == {u: 3 for u in hourly} | {
        u: 2 for u in daily
    }
    entries = await rows(
        runtime, "SELECT user_id, count(*) FROM inbox GROUP BY user_id ORDER BY user_id"
    )
    assert dict(entries) == {u: 3 for u in hourly} | {u: 2 for u in daily}
    outcomes = await rows(
        runtime,
        "SELECT outcome, reason, count(*) FROM deliveries WHERE channel = 'all'"
        " GROUP BY outcome, reason ORDER BY outcome",
    )
    assert outcomes == [("held", "freq_cap", 30 * 5), ("suppressed", "freq_cap", 10 * 6)]
    clock.advance(3601)  # the held come back: three more each, the rest wait again
    await drain(runtime)
    entries = await rows(runtime, "SELECT count(*) FROM inbox WHERE user_id LIKE 'h%'")
    assert entries == [(30 * 6,)]


async def test_caps_count_each_notification_once_across_redelivery(
    runtime: Runtime, clock: ManualClock
) -> None:
    from clarion.testing import evaluate_stage

    await prefs(runtime, BOB, frequency_caps={"per_hour": 5})
    await send(runtime)
    (message,) = await runtime.broker.consume("evaluate.p1", limit=1)
    stage = evaluate_stage(runtime)
    for _ in range(2):
        result = await stage.handle([stage.decode(message)])
        for record in result.records:
            await record()
    stamps = await runtime.stores.frequency.recent([BOB], clock.now() - 60)
    assert len(stamps[BOB]) == 1


async def test_ttl_expired_work_is_dropped_not_delivered_late(
    runtime: Runtime, clock: ManualClock
) -> None:
    event_id = await send(runtime, ttl_seconds=60, recipients=users(5), target=None)
    clock.advance(61)  # a backlog: nobody picked it up in time
    await drain(runtime)
    assert await inbox_count(runtime, event_id) == 0
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert (status.state, status.suppressed) == (EventState.COMPLETED, 5)
    assert [r.reason for r in await trail(runtime, event_id, users(5)[0])] == ["expired"]


async def test_a_held_notification_that_expires_while_held_is_dropped(
    runtime: Runtime, clock: ManualClock
) -> None:
    at(clock, 2026, 6, 1, 23, 0)
    await prefs(runtime, BOB, quiet_hours=QUIET)
    event_id = await send(runtime, ttl_seconds=3600)
    await drain(runtime)
    at(clock, 2026, 6, 2, 8, 0)
    await drain(runtime)
    assert await inbox_count(runtime, event_id) == 0
    assert [r.reason for r in await trail(runtime, event_id)] == ["expired", "held_quiet_hours"]


async def _kill(runtime: Runtime, kind: KillKind, value: str) -> str:
    switch = KillSwitch(
        f"ks_{secrets.token_hex(3)}", kind, value, "test", runtime.clock.now(), "test"
    )
    await runtime.stores.kill_switches.create(switch)
    return switch.id


async def test_kill_switch_stops_work_already_queued(runtime: Runtime) -> None:
    queued = [await send(runtime, PROMO, target=f"u{i}") for i in range(3)]
    other = await send(runtime, LIKE)
    await _kill(runtime, KillKind.TYPE, "promo")
    await drain(runtime)
    for event_id in queued:
        assert await inbox_count(runtime, event_id) == 0
    assert [r.reason for r in await trail(runtime, queued[0], UserId("u0"))] == ["killed"]
    assert await inbox_count(runtime, other) == 1


async def test_kill_switch_by_sender_campaign_and_channel(runtime: Runtime) -> None:
    campaign = await send(runtime, PROMO, campaign="spring_sale")
    plain = await send(runtime, PROMO)
    await _kill(runtime, KillKind.CAMPAIGN, "spring_sale")
    await drain(runtime)
    assert (await inbox_count(runtime, campaign), await inbox_count(runtime, plain)) == (0, 1)

    await _kill(runtime, KillKind.CHANNEL, "in_app")
    blocked = await send(runtime)
    await drain(runtime)
    assert [r.reason for r in await trail(runtime, blocked)] == ["killed"]


async def test_kill_switch_stops_a_fan_out_in_progress(
    settings: Settings, clock: ManualClock
) -> None:
    runtime = open_runtime(settings.replace(fanout_slice_batches=2), clock=clock)
    try:
        await runtime.stores.followers.add(UserId("star"), users(1000))
        event_id = await send(runtime, actor="star", fan_out=FanOut.FOLLOWERS, target=None)
        await build_runner(runtime).run_once()  # first fan-out turn: 2 batches, a continuation
        await _kill(runtime, KillKind.SENDER, "tests")
        await build_runner(runtime).drain()  # a worker that has seen the switch
        status = await runtime.stores.events.status(event_id)
    finally:
        await runtime.close()
    assert status is not None
    assert status.state is EventState.KILLED
    assert "kill switch" in (status.error or "")
    assert status.delivered == 0  # batches already out were suppressed, no more produced
    assert status.recipients == 200


async def test_workers_see_a_new_kill_switch_within_the_refresh(
    runtime: Runtime, backend: str
) -> None:
    from clarion.pipeline.switches import REFRESH_S, KillSwitchCache

    now = [100.0]
    cache = KillSwitchCache(runtime.stores.kill_switches, monotonic=lambda: now[0])
    seen = await cache.current()
    assert seen.stopping(type_name="promo", sender="s", campaign=None) is None
    switch_id = await _kill(runtime, KillKind.TYPE, "promo")
    now[0] += REFRESH_S - 0.01
    early = (await cache.current()).stopping(type_name="promo", sender="s", campaign=None)
    # With Redis the switch is announced: the very next batch honours it. Embedded, the
    # periodic re-read does.
    assert early == (switch_id if backend != "sqlite" else None)
    now[0] += 0.02
    stopped = await cache.current()
    assert stopped.stopping(type_name="promo", sender="s", campaign=None) == switch_id
    await runtime.stores.kill_switches.lift(switch_id, 0.0, "ops")
    lifted = (await cache.current()).stopping(type_name="promo", sender="s", campaign=None)
    assert lifted == (None if backend != "sqlite" else switch_id)
    assert REFRESH_S <= 0.5  # with evaluation on top, honoured within a second


async def test_without_frequency_counts_p0_and_p1_go_out_and_p2_waits(
    runtime: Runtime, clock: ManualClock
) -> None:
    class Away:
        async def reserve(self, requests: object, now: float) -> list[CapCheck]:
            raise CountsUnavailableError("frequency counts unavailable: connection refused")

        async def recent(self, user_ids: object, since: float) -> dict[UserId, list[float]]:
            raise CountsUnavailableError("frequency counts unavailable: connection refused")

    s = runtime.stores
    stage = EvaluateStage(
        s.preferences, s.deliveries, s.users, s.devices, Away(), s.aggregates, s.digests,
        KillSwitchCache(s.kill_switches), clock, worker="test",
    )  # fmt: skip
    await prefs(runtime, BOB, frequency_caps={"per_hour": 1})
    for spec, topic in ((OTP, "evaluate.p0"), (LIKE, "evaluate.p1")):
        event_id = await send(runtime, spec)
        (message,) = await runtime.broker.consume(topic, limit=1)
        result = await stage.handle([stage.decode(message)])
        (record,) = result.records
        await record()
        assert await inbox_count(runtime, event_id) == 1  # uncapped while counts are away
    promo = await send(runtime, PROMO)
    (message,) = await runtime.broker.consume("evaluate.p2", limit=1)
    with pytest.raises(CountsUnavailableError):  # the claim fails and is retried later
        await stage.handle([stage.decode(message)])
    assert await inbox_count(runtime, promo) == 0
