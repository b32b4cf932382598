"""A state batch goes to the store in rounds of distinct keys: each key's posts in their
order, everything else in bulk beside them."""

from __future__ import annotations

from clarion.live.state import rounds, state_post
from clarion.types import UserId

ANN, BOB = UserId("ann"), UserId("bob")


def test_distinct_keys_are_one_round() -> None:
    batch = [state_post(u, k, {}, 1) for u in (ANN, BOB) for k in ("playback", "plan")]
    assert rounds(batch) == [[0, 1, 2, 3]]


def test_a_key_posted_again_waits_for_the_next_round() -> None:
    batch = [
        state_post(ANN, "playback", {}, 1),
        state_post(BOB, "playback", {}, 1),
        state_post(ANN, "playback", {}, 2),
        state_post(ANN, "plan", {}, 1),
        state_post(ANN, "playback", {}, 3),
        state_post(BOB, "playback", {}, 2),
    ]
    assert rounds(batch) == [[0, 1, 3], [2, 5], [4]]


def test_nothing_is_no_round() -> None:
    assert rounds([]) == []
