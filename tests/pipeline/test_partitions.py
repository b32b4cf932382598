"""A celebrity fan-out through precomputed partitions reaches exactly the follower set."""

from __future__ import annotations

import orjson

from clarion.clock import ManualClock
from clarion.pipeline.partitions import refresh_partitions
from clarion.runtime import Runtime
from clarion.testing import accept_ids, event, type_spec
from clarion.types import EventId, UserId
from clarion.worker import build_runner
from tests.backends import inbox_users, rows

POST = type_spec("new_post")
STAR = UserId("star")


def ids(numbers: range) -> list[UserId]:
    return [UserId(f"fan{n:05d}") for n in numbers]


async def post(runtime: Runtime) -> EventId:
    await runtime.stores.types.put(POST, runtime.clock.now())
    (event_id,) = await accept_ids(
        runtime, event(POST, now=runtime.clock.now(), actor=STAR, fan_out="followers")
    )
    await build_runner(runtime).drain()
    return event_id


async def tamper(runtime: Runtime, part_no: int, members: list[UserId]) -> None:
    """Overwrite a stored partition: shows whether fan-out read the partition or not."""
    stored: object = list(members) if runtime._postgres else orjson.dumps(members)
    await rows(
        runtime,
        "UPDATE partitions SET members = ? WHERE creator_id = ? AND part_no = ?",
        stored,
        STAR,
        part_no,
    )


async def test_fanout_through_partitions_reaches_exactly_the_followers(runtime: Runtime) -> None:
    followers = runtime.stores.followers
    await followers.add(STAR, ids(range(1000)))
    await refresh_partitions(runtime.stores.partitions, STAR, size=64, now=runtime.clock.now())
    await followers.add(STAR, ids(range(5000, 5040)))  # follows and unfollows since the build
    await followers.remove(STAR, ids(range(0, 1000, 7)))
    await refresh_partitions(runtime.stores.partitions, STAR, size=64, now=runtime.clock.now())

    event_id = await post(runtime)

    expected = await followers.between(STAR, after=None, upto=None)
    assert await inbox_users(runtime, event_id) == expected
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert (status.state, status.recipients, status.batches_total) == (
        "completed",
        len(expected),
        16,
    )


async def test_fanout_hands_out_partitions_rather_than_paging(runtime: Runtime) -> None:
    await runtime.stores.followers.add(STAR, ids(range(300)))
    await refresh_partitions(runtime.stores.partitions, STAR, size=100, now=runtime.clock.now())
    await tamper(runtime, 1, ids(range(100, 150)))  # only the partition forgets 150…199
    event_id = await post(runtime)
    assert await inbox_users(runtime, event_id) == ids(range(150)) + ids(range(200, 300))


async def test_a_stale_partition_set_is_not_trusted(runtime: Runtime, clock: ManualClock) -> None:
    await runtime.stores.followers.add(STAR, ids(range(300)))
    await refresh_partitions(runtime.stores.partitions, STAR, size=100, now=runtime.clock.now())
    await tamper(runtime, 1, [])
    clock.advance(runtime.settings.partition_max_age_s + 1)
    event_id = await post(runtime)
    assert await inbox_users(runtime, event_id) == ids(range(300))  # read live


async def test_a_rebuild_during_the_fanout_neither_skips_nor_repeats_anyone(
    runtime: Runtime,
) -> None:
    followers, partitions = runtime.stores.followers, runtime.stores.partitions
    await followers.add(STAR, ids(range(2000)))
    await refresh_partitions(partitions, STAR, size=100, now=runtime.clock.now())
    await runtime.stores.types.put(POST, runtime.clock.now())
    (event_id,) = await accept_ids(
        runtime, event(POST, now=runtime.clock.now(), actor=STAR, fan_out="followers")
    )
    runner = build_runner(runtime, stages=["fanout"])
    assert await runner.run_once()  # the first turn hands out partitions of generation 1
    await followers.add(STAR, ids(range(3000, 3010)))
    await partitions.rebuild(STAR, size=30, now=runtime.clock.now())  # generation 2
    await build_runner(runtime).drain()
    assert await inbox_users(runtime, event_id) == await followers.between(
        STAR, after=None, upto=None
    )
