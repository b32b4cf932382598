"""Provider health is one record per provider that every worker changes: changes made at
once by several processes must all count (SQLite's write lock; Redis's WATCH/MULTI)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from clarion.backends.redis.stores import RedisProviderHealthStore
from clarion.clock import ManualClock
from clarion.config import Settings
from clarion.resilience.breaker import BreakerState, Health
from clarion.runtime import Runtime, open_runtime


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _count(health: Health) -> tuple[Health, int]:
    moved = dataclasses.replace(health, sent=health.sent + 1)
    return moved, moved.sent


async def test_concurrent_changes_from_two_processes_all_count(
    runtime: Runtime, settings: Settings, clock: ManualClock, backend: str
) -> None:
    other = open_runtime(settings, clock=clock)  # a second worker's handle
    try:
        stores = [runtime.stores.provider_health, other.stores.provider_health]
        if backend != "sqlite":  # with the queues in Redis, health is there too
            assert all(isinstance(s, RedisProviderHealthStore) for s in stores)
        await asyncio.gather(*(stores[i % 2].update("apns", _count) for i in range(40)))
        health = (await other.stores.provider_health.all())["apns"]
        assert health.sent == 40
        assert health.state is BreakerState.CLOSED
        assert await runtime.stores.provider_health.all() == {"apns": health}
    finally:
        await other.close()


async def test_a_change_that_changes_nothing_writes_nothing(runtime: Runtime) -> None:
    answer = await runtime.stores.provider_health.update("fcm", lambda h: (h, "unchanged"))
    assert answer == "unchanged"
    assert await runtime.stores.provider_health.all() == {}
