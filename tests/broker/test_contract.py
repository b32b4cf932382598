"""One contract, every broker: the delivery semantics of ``clarion.broker.base``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clarion.backends.redis.broker import RedisBroker
from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.broker import SqliteBroker
from clarion.broker import Broker, Outbound
from clarion.broker.memory import MemoryBroker
from clarion.clock import ManualClock

LEASE_S = 30.0
MAX_ATTEMPTS = 3


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def brokers(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[tuple[Broker, Broker]]:
    """Two handles on one set of queues, as two worker processes would have (the in-memory
    broker can only share itself)."""
    if request.param == "memory":
        memory = MemoryBroker(clock, lease_s=LEASE_S, max_attempts=MAX_ATTEMPTS)
        yield memory, memory
        return
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        first, second = (
            RedisBroker(url, clock, lease_s=LEASE_S, max_attempts=MAX_ATTEMPTS) for _ in "ab"
        )
        yield first, second
        await first.close()
        await second.close()
        return
    dbs = [SqliteDatabase(tmp_path / "broker.db") for _ in "ab"]
    yield (
        SqliteBroker(dbs[0], clock, lease_s=LEASE_S, max_attempts=MAX_ATTEMPTS),
        SqliteBroker(dbs[1], clock, lease_s=LEASE_S, max_attempts=MAX_ATTEMPTS),
    )
    for db in dbs:
        db.close()


@pytest.fixture
def broker(brokers: tuple[Broker, Broker]) -> Broker:
    return brokers[0]


def out(body: bytes, topic: str = "t.p1", delay_s: float = 0.0) -> Outbound:
    return Outbound(topic, body, delay_s)


async def test_broker_delivers_in_publish_order_and_ack_removes(broker: Broker) -> None:
    await broker.publish([out(b"a"), out(b"b"), out(b"c")])
    first = await broker.consume("t.p1", limit=2)
    assert [m.body for m in first] == [b"a", b"b"]
    assert all(m.attempts == 1 for m in first)
    await broker.ack(first)
    rest = await broker.consume("t.p1", limit=10)
    assert [m.body for m in rest] == [b"c"]
    await broker.ack(rest)
    assert await broker.depth("t.p1") == 0


async def test_settle_publishes_runs_the_records_in_order_then_acks(broker: Broker) -> None:
    await broker.publish([out(b"claim")])
    claimed = await broker.consume("t.p1", limit=1)
    ran: list[str] = []

    async def record(name: str) -> None:
        assert await broker.depth("next.p1") == 1  # published first
        ran.append(name)

    await broker.settle(
        claimed, [out(b"next", "next.p1")], [lambda: record("first"), lambda: record("second")]
    )
    assert ran == ["first", "second"]
    assert await broker.depth("t.p1") == 0


async def test_a_claim_whose_record_fails_is_not_acked(broker: Broker, clock: ManualClock) -> None:
    await broker.publish([out(b"claim")])
    claimed = await broker.consume("t.p1", limit=1)

    async def failing() -> None:
        raise RuntimeError("store away")

    with pytest.raises(RuntimeError):
        await broker.settle(claimed, [], [failing])
    clock.advance(LEASE_S + 1)
    assert [m.body for m in await broker.consume("t.p1", limit=1)] == [b"claim"]


async def test_running_low_counts_what_is_due_not_what_is_held(broker: Broker) -> None:
    await broker.publish([out(b"now %d" % i) for i in range(3)])
    await broker.publish([out(b"later %d" % i, delay_s=60) for i in range(5)])
    assert await broker.running_low("t.p1", 4)
    assert not await broker.running_low("t.p1", 3)
    assert await broker.running_low("empty.p1", 1)


async def test_broker_hides_claimed_messages_until_the_lease_expires(
    broker: Broker, clock: ManualClock
) -> None:
    await broker.publish([out(b"x")])
    (held,) = await broker.consume("t.p1", limit=1)
    assert await broker.consume("t.p1", limit=1) == []
    clock.advance(LEASE_S - 1)
    assert await broker.consume("t.p1", limit=1) == []
    clock.advance(2)
    (again,) = await broker.consume("t.p1", limit=1)
    assert again.body == b"x"
    assert again.attempts == 2
    assert again.id == held.id


async def test_broker_ignores_an_ack_from_an_expired_lease(
    broker: Broker, clock: ManualClock
) -> None:
    await broker.publish([out(b"x")])
    (stale,) = await broker.consume("t.p1", limit=1)
    clock.advance(LEASE_S + 1)
    (current,) = await broker.consume("t.p1", limit=1)
    await broker.ack([stale])
    assert await broker.depth("t.p1") == 1
    await broker.ack([current])
    assert await broker.depth("t.p1") == 0


async def test_broker_nack_redelivers_after_the_delay(broker: Broker, clock: ManualClock) -> None:
    await broker.publish([out(b"x")])
    (message,) = await broker.consume("t.p1", limit=1)
    await broker.nack(message, delay_s=5)
    assert await broker.consume("t.p1", limit=1) == []
    clock.advance(5)
    (again,) = await broker.consume("t.p1", limit=1)
    assert again.attempts == 2


async def test_broker_keeps_delayed_messages_invisible(broker: Broker, clock: ManualClock) -> None:
    await broker.publish([out(b"later", delay_s=60), out(b"now")])
    now = await broker.consume("t.p1", limit=5)
    assert [m.body for m in now] == [b"now"]
    await broker.ack(now)
    clock.advance(60)
    assert [m.body for m in await broker.consume("t.p1", limit=5)] == [b"later"]


async def test_broker_topics_are_separate(broker: Broker) -> None:
    await broker.publish([out(b"bulk", "t.p2")] * 50 + [out(b"otp", "t.p0")])
    (urgent,) = await broker.consume("t.p0", limit=10)
    assert urgent.body == b"otp"
    assert await broker.depth("t.p2") == 50


async def test_broker_dead_letters_a_message_that_is_never_acked(
    broker: Broker, clock: ManualClock
) -> None:
    await broker.publish([out(b"poison")])
    for _ in range(MAX_ATTEMPTS):
        assert len(await broker.consume("t.p1", limit=1)) == 1
        clock.advance(LEASE_S + 1)
    assert await broker.consume("t.p1", limit=1) == []
    (dead,) = await broker.dead_letters()
    assert dead.body == b"poison"
    assert dead.attempts == MAX_ATTEMPTS
    assert await broker.depth("t.p1") == 0


async def test_broker_dead_letter_records_the_error(broker: Broker) -> None:
    await broker.publish([out(b"bad")])
    (message,) = await broker.consume("t.p1", limit=1)
    await broker.dead_letter(message, error="ValueError: nope")
    (dead,) = await broker.dead_letters()
    assert (dead.body, dead.error, dead.topic) == (b"bad", "ValueError: nope", "t.p1")
    assert await broker.depth("t.p1") == 0


async def test_renew_restarts_a_held_lease_and_ignores_a_lost_one(
    broker: Broker, clock: ManualClock
) -> None:
    await broker.publish([out(b"a")])
    (held,) = await broker.consume("t.p1", limit=1)
    clock.advance(LEASE_S - 1)
    await broker.renew([held])
    clock.advance(LEASE_S - 1)  # past the first lease, within the renewed one
    assert await broker.consume("t.p1", limit=1) == []
    clock.advance(2)
    (taken_over,) = await broker.consume("t.p1", limit=1)
    await broker.renew([held])  # the old holder's lease is gone: this changes nothing
    await broker.ack([taken_over])
    assert await broker.depth("t.p1") == 0


async def test_dead_letters_can_be_listed_found_replayed_and_purged(
    broker: Broker, clock: ManualClock
) -> None:
    await broker.publish([out(b"one"), out(b"two", "t.p2")])
    for topic in ("t.p1", "t.p2"):
        (message,) = await broker.consume(topic, limit=1)
        await broker.dead_letter(message, error=f"broke in {topic}")
        clock.advance(1)
    newest, oldest = await broker.dead_letters()
    assert (newest.body, oldest.body) == (b"two", b"one")
    assert await broker.dead_letter_by_id(oldest.id) == oldest
    assert await broker.dead_letter_by_id("no-such-letter") is None

    assert await broker.replay(oldest.id)
    assert not await broker.replay(oldest.id)
    (again,) = await broker.consume("t.p1", limit=1)
    assert (again.body, again.attempts) == (b"one", 1)

    assert await broker.purge("no-such-letter") == 0
    assert await broker.purge() == 1
    assert await broker.dead_letters() == []


async def test_publish_can_bury_a_message_straight_away(broker: Broker) -> None:
    await broker.publish([out(b"given up").as_dead_letter("expired before delivery")])
    (dead,) = await broker.dead_letters()
    assert (dead.body, dead.error, dead.attempts) == (b"given up", "expired before delivery", 0)
    assert await broker.depth("t.p1") == 0


async def test_depths_count_what_is_due_or_in_flight_and_delayed_messages_once_due(
    broker: Broker, clock: ManualClock
) -> None:
    await broker.publish([out(b"a"), out(b"b"), out(b"later", delay_s=30), out(b"c", "t.p0")])
    await broker.consume("t.p1", limit=1)  # one in flight, one ready, one not yet due
    assert await broker.depths() == {"t.p1": 2, "t.p0": 1}
    assert await broker.depth("t.p1") == 2
    assert await broker.held() == {"t.p1": 1}  # what is held is counted apart
    clock.advance(31)  # the delayed one is due; the lease ran out, so "a" is ready again
    assert await broker.depths() == {"t.p1": 3, "t.p0": 1}
    assert await broker.held() == {}


async def test_wait_returns_early_when_another_worker_publishes(
    brokers: tuple[Broker, Broker],
) -> None:
    waiting, publishing = brokers
    await waiting.wait(0)  # settle any subscription
    waiter = asyncio.create_task(waiting.wait(10))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await publishing.publish([out(b"news")])
    await asyncio.wait_for(waiter, 5)
    assert time.monotonic() - started < 2


async def test_competing_consumers_share_work_and_take_over_a_dead_ones(
    brokers: tuple[Broker, Broker], clock: ManualClock
) -> None:
    first, second = brokers
    await first.publish([out(bytes([i])) for i in range(6)])
    held = await first.consume("t.p1", limit=3)
    other = await second.consume("t.p1", limit=10)
    assert sorted(m.body for m in held + other) == [bytes([i]) for i in range(6)]
    await second.ack(other)
    # The first worker dies holding its three: once the lease runs out the second takes them.
    clock.advance(LEASE_S + 1)
    taken_over = await second.consume("t.p1", limit=10)
    assert sorted(m.body for m in taken_over) == sorted(m.body for m in held)
    assert all(m.attempts == 2 for m in taken_over)
    await first.ack(held)  # a late ack from the dead lease changes nothing
    assert await second.depth("t.p1") == 3
    await second.ack(taken_over)
    assert await first.depth("t.p1") == 0


async def test_oldest_is_when_each_stages_longest_waiting_due_message_came(
    broker: Broker, clock: ManualClock
) -> None:
    first_at = clock.now()
    await broker.publish([out(b"a"), out(b"later", "u.p2", delay_s=60)])
    clock.advance(5)
    await broker.publish([out(b"b")])
    assert await broker.oldest(clock.now()) == {"t.p1": first_at}  # "u.p2" is not due
    held = await broker.consume("t.p1", limit=1)  # in flight is still waiting on the stage
    assert await broker.oldest(clock.now()) == {"t.p1": first_at}
    await broker.ack(held)
    assert await broker.oldest(clock.now()) == {"t.p1": first_at + 5}
    clock.advance(60)
    assert (await broker.oldest(clock.now()))["u.p2"] == first_at


async def test_dead_letters_are_counted(broker: Broker) -> None:
    assert await broker.dead_letter_count() == 0
    await broker.publish([out(b"x")])
    (message,) = await broker.consume("t.p1", limit=1)
    await broker.dead_letter(message, error="boom")
    await broker.publish([Outbound("u.p1", b"y", dead_letter="bad")])
    assert await broker.dead_letter_count() == 2
