"""Keyed state (``StateStore.put``) on both databases: newer versions win, older and equal
ones are ignored, a batch holding a key twice is decided in order, and only people whose
stream is active get a stream entry."""

from __future__ import annotations

import asyncio

import pytest

from clarion.clock import ManualClock
from clarion.live.log import KEEP, KEEP_S, Kind, Post
from clarion.live.state import state_post
from clarion.runtime import Runtime
from clarion.types import UserId

ANN, BOB, CY = UserId("ann"), UserId("bob"), UserId("cy")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_batch_applies_newer_versions_and_streams_them_to_the_listening(
    runtime: Runtime, clock: ManualClock
) -> None:
    stores = runtime.stores
    await stores.streams.activate(ANN, clock.now())
    await stores.streams.activate(BOB, clock.now())
    first = [state_post(u, "playback", {"at": 10}, 5) for u in (ANN, BOB, CY)]
    assert [p.applied for p in await stores.states.put(first, clock.now())] == [True] * 3
    clock.advance(1)
    batch = [
        state_post(ANN, "playback", {"at": 20}, 6),  # newer
        state_post(BOB, "playback", {"at": 1}, 4),  # older: ignored
        state_post(CY, "playback", {"at": 30}, 5),  # as new: ignored
        state_post(BOB, "plan", {"tier": "gold"}, 1),
    ]
    puts = await stores.states.put(batch, clock.now())
    assert [p.applied for p in puts] == [True, False, False, True]
    assert [(p.entry.user_id, p.entry.body["key"]) for p in puts if p.entry] == [
        (ANN, "playback"),
        (BOB, "plan"),
    ]
    assert puts[0].entry is not None
    assert puts[0].entry.pos == 2
    snapshot = {s.key: (s.value, s.version) for s in await stores.states.snapshot(BOB)}
    assert snapshot == {"playback": ({"at": 10}, 5), "plan": ({"tier": "gold"}, 1)}
    assert [p.entry is None for p in await stores.states.put(first[2:], clock.now())] == [True]


async def test_a_key_twice_in_one_batch_is_decided_in_order(
    runtime: Runtime, clock: ManualClock
) -> None:
    """Each key's posts are decided in their order; the rest of the batch goes in bulk
    beside them (``live.state.rounds``)."""
    stores = runtime.stores
    await stores.streams.activate(ANN, clock.now())
    await stores.streams.activate(BOB, clock.now())
    batch = [
        state_post(ANN, "playback", {"at": 2}, 2),
        state_post(BOB, "playback", {"at": 7}, 1),
        state_post(ANN, "playback", {"at": 1}, 1),  # older than the one before it
        state_post(CY, "plan", {"tier": "gold"}, 1),
        state_post(ANN, "playback", {"at": 3}, 3),
        state_post(BOB, "playback", {"at": 8}, 2),
    ]
    puts = await stores.states.put(batch, clock.now())
    assert [p.applied for p in puts] == [True, True, False, True, True, True]
    streamed = [(p.entry.user_id, p.entry.pos, p.entry.body["version"]) for p in puts if p.entry]
    assert sorted(streamed) == [(ANN, 1, 2), (ANN, 2, 3), (BOB, 1, 1), (BOB, 2, 2)]
    (stored,) = await stores.states.snapshot(ANN)
    assert (stored.value, stored.version) == ({"at": 3}, 3)
    (stored,) = await stores.states.snapshot(BOB)
    assert (stored.value, stored.version) == ({"at": 8}, 2)


async def test_two_batches_racing_over_the_same_people_keep_the_newest_and_in_order(
    runtime: Runtime, clock: ManualClock
) -> None:
    """Two API processes storing overlapping batches at once, their people in opposite
    orders: no deadlock, the higher version wins, and each person's stream positions
    stay one apart with no gap."""
    stores = runtime.stores
    people = [UserId(f"racer{n:02}") for n in range(40)]
    heads = {u: await stores.streams.activate(u, clock.now()) for u in people}
    older = [state_post(u, "playback", {"v": 2}, 2) for u in people]
    newer = [state_post(u, "playback", {"v": 3}, 3) for u in reversed(people)]
    first, second = await asyncio.gather(
        stores.states.put(older, clock.now()), stores.states.put(newer, clock.now())
    )
    assert all(p.applied for p in second)  # 3 beats 2 whichever committed first
    appended = 0
    for user in people:
        (stored,) = await stores.states.snapshot(user)
        assert (stored.value, stored.version) == ({"v": 3}, 3)
        replay = await stores.streams.replay(user, (heads[user].epoch, 0))
        assert [e.pos for e in replay.entries] == list(range(1, len(replay.entries) + 1))
        assert replay.entries[-1].body["version"] == 3
        appended += len(replay.entries)
    assert appended == sum(p.applied for p in first) + len(people)  # one entry per change


async def test_batches_whose_later_rounds_reach_other_people_race_without_deadlock(
    runtime: Runtime, clock: ManualClock
) -> None:
    """A later round can append for people the first did not (their first post was stale).
    Two such batches, each with its own key for the same people, reach them in opposite
    rounds: both must commit, every position one apart (on PostgreSQL every lock is taken
    in the first round, in one order; an abort here would be a deadlock)."""
    stores = runtime.stores
    people = [UserId(f"racer{n:02}") for n in range(20)]
    heads = {u: await stores.streams.activate(u, clock.now()) for u in people}
    stored = [state_post(u, k, {"v": 5}, 5) for u in people for k in ("a", "b")]
    await stores.states.put(stored, clock.now())

    def batch(key: str, late: int) -> list[Post]:
        posts = []
        for n, user in enumerate(people):
            if n % 2 == late:  # stale first: this person's update goes in the second round
                posts.append(state_post(user, key, {"v": 1}, 1))
            posts.append(state_post(user, key, {"v": 6}, 6))
        return posts

    await asyncio.gather(*(stores.states.snapshot(u) for u in people[:4]))  # connections ready
    first, second = await asyncio.gather(
        stores.states.put(batch("a", 0), clock.now()), stores.states.put(batch("b", 1), clock.now())
    )
    assert sum(p.applied for p in first) == sum(p.applied for p in second) == len(people)
    for user in people:
        assert {s.key: s.version for s in await stores.states.snapshot(user)} == {"a": 6, "b": 6}
        replay = await stores.streams.replay(user, (heads[user].epoch, 0))
        assert [e.pos for e in replay.entries] == list(range(1, 5))  # a, b at 5; a, b at 6


async def test_two_devices_starting_a_stream_at_once_share_one_epoch(
    runtime: Runtime, clock: ManualClock
) -> None:
    """A person's phone and TV connect to two API processes in the same instant: a second
    epoch would reset the first device's stream."""
    streams = runtime.stores.streams
    people = [UserId(f"newcomer{n}") for n in range(20)]
    for user in people:
        phone, tv = await asyncio.gather(
            streams.activate(user, clock.now()), streams.activate(user, clock.now())
        )
        assert phone == tv
    clock.advance(2 * 86_400)  # both lapse; they come back together: one new epoch again
    phone, tv = await asyncio.gather(
        streams.activate(people[0], clock.now()), streams.activate(people[0], clock.now())
    )
    assert phone == tv
    assert phone.pos == 0


async def test_replay_serves_what_was_missed_and_resets_once_it_is_pruned(
    runtime: Runtime, clock: ManualClock
) -> None:
    streams = runtime.stores.streams
    head = await streams.activate(ANN, clock.now())
    posts = [Post(ANN, Kind.STATE, {"n": n}) for n in range(KEEP + 10)]
    await streams.append(posts[:5], clock.now())
    caught_up = await streams.replay(ANN, (head.epoch, 5))
    assert (caught_up.reset, caught_up.entries, caught_up.head.pos) == (None, [], 5)
    missed = await streams.replay(ANN, (head.epoch, 2))
    assert [e.body["n"] for e in missed.entries] == [2, 3, 4]
    clock.advance(KEEP_S / 2)
    await streams.activate(ANN, clock.now())  # still listened to
    await streams.append(posts[5:], clock.now())
    clock.advance(KEEP_S / 2 + 1)  # the first five are a day old and more than KEEP behind
    assert await streams.prune(clock.now()) == 5
    assert (await streams.replay(ANN, (head.epoch, 2))).reset is not None
    from_kept = await streams.replay(ANN, (head.epoch, 10))
    assert (from_kept.reset, len(from_kept.entries)) == (None, KEEP)
