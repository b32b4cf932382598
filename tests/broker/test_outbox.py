"""The outbox relay: what ingest commits to the store reaches Redis, within the bound."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clarion.backends.redis.broker import RedisBroker
from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.broker import SqliteBroker
from clarion.broker import Outbound
from clarion.broker.outbox import OutboxRelay
from clarion.clock import ManualClock

TOPIC = "fanout.p1"


@pytest.fixture
async def parts(
    tmp_path: Path, clock: ManualClock, redis_url: str
) -> AsyncIterator[tuple[SqliteBroker, RedisBroker, OutboxRelay]]:
    db = SqliteDatabase(tmp_path / "outbox.db")
    outbox = SqliteBroker(db, clock, lease_s=30, max_attempts=1_000_000)
    redis = RedisBroker(redis_url, clock, lease_s=30, max_attempts=3)
    yield outbox, redis, OutboxRelay(outbox, redis, max_stream_len=5)
    await redis.close()
    db.close()


async def test_a_full_stream_leaves_the_backlog_in_the_outbox_and_loses_nothing(
    parts: tuple[SqliteBroker, RedisBroker, OutboxRelay],
) -> None:
    outbox, redis, relay = parts
    await outbox.publish([Outbound(TOPIC, b"%d" % i) for i in range(12)])
    assert await relay.relay(TOPIC) == 5
    assert (await redis.depth(TOPIC), await outbox.depth(TOPIC)) == (5, 7)
    assert await relay.relay(TOPIC) == 0  # full: the rest waits, durable, in the store
    assert await relay.depth(TOPIC) == 12  # and load shedding still sees all of it

    taken = await relay.consume(TOPIC, limit=3)
    await relay.ack(taken)
    assert await relay.relay(TOPIC) == 3  # room for three more
    bodies = []
    while batch := await relay.consume(TOPIC, limit=100):
        bodies += [m.body for m in batch]
        await relay.ack(batch)
    assert sorted([m.body for m in taken] + bodies) == sorted(b"%d" % i for i in range(12))
    assert await relay.depth(TOPIC) == 0


async def test_the_relay_does_not_ask_redis_when_the_outbox_is_empty(
    parts: tuple[SqliteBroker, RedisBroker, OutboxRelay], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, redis, relay = parts

    async def no_round_trips(topic: str) -> int:
        raise AssertionError("asked Redis for nothing")

    monkeypatch.setattr(redis, "depth", no_round_trips)
    assert await relay.relay(TOPIC) == 0


async def test_held_counts_what_waits_for_later_in_the_outbox_and_in_redis(
    clock: ManualClock, redis_url: str, postgres_dsn: str
) -> None:
    """``clarion queues`` shows these apart from the backlog (PostgreSQL outbox + Redis)."""
    from clarion.backends.postgres.database import PostgresDatabase
    from clarion.backends.postgres.outbox import PostgresOutbox
    from tests.services import empty_postgres

    await empty_postgres(postgres_dsn)
    db = PostgresDatabase(postgres_dsn, now=clock.now)
    redis = RedisBroker(redis_url, clock, lease_s=30, max_attempts=3)
    relay = OutboxRelay(PostgresOutbox(db, clock, lease_s=30), redis)
    try:
        now = clock.now()
        await db.execute(
            "INSERT INTO outbox (topic, body, enqueued_at, available_at)"
            " SELECT $1, 'x', $2, unnest($3::double precision[])",
            TOPIC,
            now,
            [now, now + 60, now + 120],
        )
        await redis.publish([Outbound(TOPIC, b"later", 90), Outbound(TOPIC, b"now")])
        assert await relay.held() == {TOPIC: 3}
        assert await relay.depths() == {TOPIC: 2}
        clock.advance(100)
        assert await relay.held() == {TOPIC: 1}
    finally:
        await redis.close()
        await db.close()
