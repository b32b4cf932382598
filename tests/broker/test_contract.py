"""One contract, every broker: the delivery semantics of ``clarion.broker.base``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clarion.broker import Broker, Outbound
from clarion.broker.memory import MemoryBroker
from clarion.broker.sqlite import SqliteBroker
from clarion.clock import ManualClock
from clarion.sqlite import SqliteDatabase

LEASE_S = 30.0
MAX_ATTEMPTS = 3


@pytest.fixture(params=["memory", "sqlite"])
async def broker(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[Broker]:
    if request.param == "memory":
        yield MemoryBroker(clock, lease_s=LEASE_S, max_attempts=MAX_ATTEMPTS)
        return
    db = SqliteDatabase(tmp_path / "broker.db")
    yield SqliteBroker(db, clock, lease_s=LEASE_S, max_attempts=MAX_ATTEMPTS)
    db.close()


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
