"""The hot state in front of the stores when the queues are in Redis (``backends.redis.stores``):
answers come from Redis, the store stays the safety net, and losing Redis's copy (a
flush, an unreachable server) costs speed, never a duplicate or a lost count."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from clarion.backends.redis.stores import RedisIngestGuard
from clarion.clock import ManualClock
from clarion.config import Settings
from clarion.errors import ConfigError
from clarion.launch import free_port
from clarion.pipeline.messages import plan_first_steps
from clarion.policy.frequency import UNDER, CapCheck, FrequencyCaps, SlotRequest
from clarion.runtime import Runtime, hot_state_client, open_runtime
from clarion.stores.records import Accepted, BatchResult, IngestRequest, RateLimited
from clarion.testing import accept, event, type_spec
from clarion.types import Seq, UserId
from tests.backends import rows

LIKE = type_spec()


@pytest.fixture(params=["redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _flush(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def _settle(runtime: Runtime) -> None:
    guard = runtime.stores.events
    assert isinstance(guard, RedisIngestGuard)
    await guard.settle()


async def test_a_repeat_is_answered_from_redis_without_the_store(runtime: Runtime) -> None:
    now = runtime.clock.now()
    first = event(LIKE, now=now, object="photo_1")
    await accept(runtime, first)
    await _settle(runtime)
    await rows(runtime, "DELETE FROM idempotency")  # the store no longer knows the key
    again = event(LIKE, now=now, object="photo_1")
    assert await accept(runtime, again) == [Accepted(first.event_id, duplicate=True)]
    assert await runtime.stores.events.status(again.event_id) is None


async def test_the_store_still_catches_a_repeat_redis_has_lost(
    runtime: Runtime, redis_url: str
) -> None:
    now = runtime.clock.now()
    first = event(LIKE, now=now, object="photo_1")
    await accept(runtime, first)
    await _settle(runtime)
    await _flush(redis_url)
    again = event(LIKE, now=now, object="photo_1")
    assert await accept(runtime, again) == [Accepted(first.event_id, duplicate=True)]
    assert await runtime.broker.depth("evaluate.p1") == 1


async def test_a_cached_key_lapses_on_clarions_clock(runtime: Runtime, clock: ManualClock) -> None:
    first = event(LIKE, now=clock.now(), object="photo_1")
    await accept(runtime, first)
    await _settle(runtime)
    await rows(runtime, "DELETE FROM idempotency")
    clock.advance(3601)  # Redis still holds the entry (its own TTL is wall-clock)
    later = event(LIKE, now=clock.now(), object="photo_1")
    assert await accept(runtime, later) == [Accepted(later.event_id)]


async def test_sender_buckets_live_in_redis_and_bind_every_api_process(
    runtime: Runtime, settings: Settings, clock: ManualClock
) -> None:
    other = open_runtime(settings, clock=clock)  # a second API process
    try:
        now = clock.now()
        spent = await accept(runtime, event(LIKE, now=now, object="a"), rate_per_s=1)
        assert isinstance(spent, list)
        refused = await accept(other, event(LIKE, now=now, object="b"), rate_per_s=1)
        assert isinstance(refused, RateLimited)
        assert math.isclose(refused.retry_after_s, 1.0)
        assert await rows(runtime, "SELECT * FROM rate_buckets") == []  # not the store's
        clock.advance(1.0)
        assert isinstance(await accept(other, event(LIKE, now=clock.now()), rate_per_s=1), list)
    finally:
        await other.close()


async def _forget_keys(redis_url: str) -> None:
    """Drop Redis's idempotency entries only (as before a cache write has landed)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        for key in await client.keys("clarion:idem:*"):
            await client.delete(key)
    finally:
        await client.aclose()


async def test_a_repeat_redis_missed_costs_no_tokens(
    runtime: Runtime, redis_url: str, clock: ManualClock
) -> None:
    now = clock.now()
    first, second = event(LIKE, now=now, object="p1"), event(LIKE, now=now, object="p2")
    assert isinstance(await accept(runtime, first, rate_per_s=2), list)  # 1 of 2 tokens left
    await _settle(runtime)
    await _forget_keys(redis_url)
    again = event(LIKE, now=now, object="p1")
    repeat = await accept(runtime, again, rate_per_s=2)  # spent here, given back after
    assert repeat == [Accepted(first.event_id, duplicate=True)]
    assert await accept(runtime, second, rate_per_s=2) == [Accepted(second.event_id)]


async def test_a_refused_request_that_only_repeats_is_answered_as_a_repeat(
    runtime: Runtime, redis_url: str, clock: ManualClock
) -> None:
    first = event(LIKE, now=clock.now(), object="p1")
    assert isinstance(await accept(runtime, first, rate_per_s=1), list)  # the bucket is empty
    await _settle(runtime)
    await _forget_keys(redis_url)
    again = event(LIKE, now=clock.now(), object="p1")
    assert await accept(runtime, again, rate_per_s=1) == [Accepted(first.event_id, True)]
    fresh = await accept(runtime, event(LIKE, now=clock.now(), object="p2"), rate_per_s=1)
    assert isinstance(fresh, RateLimited)


async def test_without_redis_the_store_dedups_and_limits(runtime: Runtime) -> None:
    # The store under the guard, and a guard whose Redis is not there.
    store = runtime.stores.events._store  # type: ignore[attr-defined]
    unreachable = hot_state_client(f"redis://127.0.0.1:{free_port()}")
    guard = RedisIngestGuard(store, unreachable)
    plan = functools.partial(plan_first_steps, batch_size=100)
    now = runtime.clock.now()
    first, again, third = (event(LIKE, now=now, object=o) for o in ("p1", "p1", "p2"))

    def request(*events: object) -> list[IngestRequest]:
        return [IngestRequest("tests", 1.0, 1.0, list(events))]  # type: ignore[arg-type]

    try:
        assert await guard.accept(request(first), plan, now) == [[Accepted(first.event_id)]]
        assert await guard.accept(request(again), plan, now) == [
            [Accepted(first.event_id, duplicate=True)]
        ]
        (limited,) = await guard.accept(request(third), plan, now)
        assert isinstance(limited, RateLimited)
    finally:
        await unreachable.aclose()


async def _seq(runtime: Runtime, object_id: str) -> Seq:
    e = event(LIKE, now=runtime.clock.now(), object=object_id)
    await accept(runtime, e)
    (found,) = await rows(runtime, "SELECT seq FROM events WHERE event_id = ?", e.event_id)
    return Seq(found[0])


async def test_frequency_places_are_in_redis_and_a_redelivery_takes_its_own_again(
    runtime: Runtime, clock: ManualClock, backend: str
) -> None:
    ann = UserId("ann")
    caps = FrequencyCaps(per_hour=1)
    frequency = runtime.stores.frequency
    assert await frequency.reserve([SlotRequest(ann, Seq(1), caps)], clock.now()) == [UNDER]
    redelivered = await frequency.reserve([SlotRequest(ann, Seq(1), caps)], clock.now() + 5)
    assert redelivered == [UNDER]
    (refused,) = await frequency.reserve([SlotRequest(ann, Seq(2), caps)], clock.now() + 5)
    assert refused == CapCheck(over_hour=True, hour_frees_at=clock.now() + 3600)
    assert await frequency.recent([ann], clock.now() - 60) == {ann: [clock.now()]}
    table = "frequency_slots" if backend == "postgres" else "frequency_places"
    assert await rows(runtime, f"SELECT * FROM {table}") == []  # not the store's
    clock.advance(86_401)
    assert await frequency.recent([ann], clock.now() - 86_400) == {}


async def test_recorded_batches_are_answered_from_redis_and_then_from_the_store(
    runtime: Runtime, redis_url: str
) -> None:
    seq = await _seq(runtime, "photo_1")
    deliveries = runtime.stores.deliveries
    await deliveries.record_batches([BatchResult(seq, "b0", 1, inbox=[UserId("ann")])], "w", 0)
    keys = [(seq, "b0"), (seq, "b1")]
    await rows(runtime, "DELETE FROM batches")  # only Redis knows b0 now
    assert await deliveries.recorded(keys) == {(seq, "b0")}
    await deliveries.record_batches([BatchResult(seq, "b1", 1, inbox=[UserId("bob")])], "w", 0)
    await _flush(redis_url)  # only the store knows b1 now
    assert await deliveries.recorded(keys) == {(seq, "b1")}


async def _write_behind_the_cache(runtime: Runtime, user: str, doc: str, version: int) -> None:
    """Change a preference document in the store only, as if the cache's write was lost."""
    await rows(runtime, "DELETE FROM preferences WHERE user_id = ?", user)
    await rows(
        runtime,
        "INSERT INTO preferences (user_id, doc, version, updated_at) VALUES (?, ?, ?, ?)",
        user,
        doc,
        version,
        1.0,
    )


async def test_preferences_are_served_from_the_cache_and_a_write_is_read_back_at_once(
    runtime: Runtime,
) -> None:
    store, ann = runtime.stores.preferences, UserId("ann")
    assert await store.load_many([ann]) == {}  # cached as "no document"
    await _write_behind_the_cache(runtime, ann, '{"enabled": false}', 1)
    assert await store.load_many([ann]) == {}  # still the cached answer
    stored = await store.put(ann, {"enabled": True}, 2.0, "ann", expected_version=1)
    assert stored.version == 2
    (seen,) = (await store.load_many([ann])).values()
    assert (seen.version, seen.doc) == (2, {"enabled": True})  # read-your-writes


async def test_a_late_fill_with_an_older_version_cannot_undo_a_write(runtime: Runtime) -> None:
    from clarion.backends.redis.stores.preferences import CachedPreferenceStore

    store, ann = runtime.stores.preferences, UserId("ann")
    await store.put(ann, {"enabled": False}, 1.0, "ann")
    newer = await store.put(ann, {"enabled": True}, 2.0, "ann")
    assert isinstance(store, CachedPreferenceStore)
    older = newer._replace(raw=b'{"enabled": false}', version=1)
    await store._remember({ann: older})  # an evaluator that read the store before the write
    await store._remember({ann: None})  # and one that read it before there was any document
    (seen,) = (await store.load_many([ann])).values()
    assert seen.version == 2


async def test_fan_out_sized_lookups_go_to_the_store(runtime: Runtime) -> None:
    from clarion.backends.redis.stores.preferences import CACHED_UP_TO

    store, ann = runtime.stores.preferences, UserId("ann")
    crowd = [ann] + [UserId(f"u{i}") for i in range(CACHED_UP_TO)]
    assert await store.load_many(crowd) == {}  # not cached: nobody's "no document" is kept
    await _write_behind_the_cache(runtime, ann, '{"enabled": false}', 1)
    assert [r.version for r in (await store.load_many([ann])).values()] == [1]


async def test_redis_holding_another_stores_state_is_refused(
    runtime: Runtime, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    await runtime.check()  # the first store to start claims the Redis database
    same = open_runtime(settings, clock=clock)  # another process of the same store
    other = open_runtime(
        Settings(db=tmp_path / "another.db", broker=settings.broker), clock=clock
    )  # a new store (a recreated file, say) against the same Redis
    try:
        await same.check()
        with pytest.raises(ConfigError, match="another Clarion store"):
            await other.check()
    finally:
        await same.close()
        await other.close()
