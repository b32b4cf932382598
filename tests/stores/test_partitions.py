"""Precomputed follower partitions: builds, incremental refreshes, generations."""

from __future__ import annotations

import random

from clarion.pipeline.partitions import refresh_partitions
from clarion.runtime import Runtime
from clarion.stores.records import PartitionSet
from clarion.types import UserId

CREATOR = UserId("star")


def ids(numbers: range | list[int]) -> list[UserId]:
    return [UserId(f"f{n:05d}") for n in numbers]


async def contents(runtime: Runtime, current: PartitionSet) -> list[list[UserId]]:
    found = await runtime.stores.partitions.members(
        CREATOR, current.generation, range(current.partitions)
    )
    return [found[n] for n in range(current.partitions)]


async def test_build_cuts_the_followers_in_id_order_into_fixed_size_partitions(
    runtime: Runtime,
) -> None:
    await runtime.stores.followers.add(CREATOR, ids(range(250)))
    built = await runtime.stores.partitions.rebuild(CREATOR, size=100, now=10.0)
    assert (built.generation, built.partitions, built.followers) == (1, 3, 250)
    assert built.counts == (100, 100, 50)
    assert built.uppers == (UserId("f00099"), UserId("f00199"), None)
    parts = await contents(runtime, built)
    assert parts == [ids(range(100)), ids(range(100, 200)), ids(range(200, 250))]
    assert built.ref(1).after == UserId("f00099")
    assert built.ref(1).upto == UserId("f00199")


async def test_incremental_refresh_matches_a_full_rebuild(runtime: Runtime) -> None:
    followers, partitions = runtime.stores.followers, runtime.stores.partitions
    await followers.add(CREATOR, ids(range(0, 2000, 2)))  # even ids
    await partitions.rebuild(CREATOR, size=100, now=0.0)
    rng = random.Random(7)
    for _ in range(40):  # follows and unfollows anywhere in the id space, in any order
        chosen = ids(rng.sample(range(2100), 25))
        if rng.random() < 0.5:
            await followers.add(CREATOR, chosen)
        else:
            await followers.remove(CREATOR, chosen)

    refreshed, applied = await partitions.refresh(CREATOR, now=5.0)
    assert applied == 40 * 25
    assert refreshed.generation == 1  # same bounds, changed members
    incremental = [u for part in await contents(runtime, refreshed) for u in part]

    rebuilt = await partitions.rebuild(CREATOR, size=100, now=6.0)
    assert rebuilt.generation == 2
    full = [u for part in await contents(runtime, rebuilt) for u in part]

    live = await followers.between(CREATOR, after=None, upto=None)
    assert incremental == full == live
    assert refreshed.followers == rebuilt.followers == len(live)
    # A refresh with nothing logged changes nothing but the time.
    again, applied = await partitions.refresh(CREATOR, now=7.0)
    assert (applied, again.refreshed_at) == (0, 7.0)


async def test_members_of_a_replaced_generation_are_not_served(runtime: Runtime) -> None:
    await runtime.stores.followers.add(CREATOR, ids(range(10)))
    first = await runtime.stores.partitions.rebuild(CREATOR, size=5, now=0.0)
    await runtime.stores.partitions.rebuild(CREATOR, size=5, now=1.0)
    assert await runtime.stores.partitions.members(CREATOR, first.generation, [0]) == {}


async def test_refresh_job_builds_refreshes_and_rebalances(runtime: Runtime) -> None:
    store = runtime.stores.partitions
    await runtime.stores.followers.add(CREATOR, ids(range(30)))
    first = await refresh_partitions(store, CREATOR, size=10, now=0.0)
    assert (first.action, first.partitions, first.followers) == ("built", 3, 30)
    await runtime.stores.followers.add(CREATOR, ids(range(1000, 1005)))
    second = await refresh_partitions(store, CREATOR, size=10, now=1.0)
    assert (second.action, second.changes, second.followers) == ("refreshed", 5, 35)
    await runtime.stores.followers.add(CREATOR, ids(range(2000, 2030)))  # the last one swells
    third = await refresh_partitions(store, CREATOR, size=10, now=2.0)
    assert (third.action, third.partitions, third.followers) == ("rebuilt", 7, 65)
    assert await store.creators_over(65) == [(CREATOR, 65)]
    assert await store.creators_over(66) == []


async def test_a_refresh_applies_only_changes_made_after_the_build(runtime: Runtime) -> None:
    await runtime.stores.followers.add(UserId("nobody-special"), ids(range(5)))
    await runtime.stores.followers.add(CREATOR, ids(range(5)))
    await runtime.stores.partitions.rebuild(CREATOR, size=10, now=0.0)
    await runtime.stores.followers.add(CREATOR, ids(range(5, 8)))
    _, applied = await runtime.stores.partitions.refresh(CREATOR, now=1.0)
    assert applied == 3
