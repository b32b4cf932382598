"""Celebrity fan-out through precomputed follower partitions (seed 001 Part 6).

For an account with a partition set (``clarion partitions refresh`` builds one for every
creator over ``partition_threshold`` followers), fan-out does not page the follower graph:
it hands out partition references, O(partitions) small messages, and each evaluator loads
the one partition its batch names. Batch ``n`` is partition ``n``, so batch keys stay
deterministic and a redelivered turn republishes the same ones.

What is trusted, and when not:

* The set is chosen at the fan-out's first turn, only if it was refreshed within
  ``partition_max_age_s``; otherwise the fan-out pages the live follower store as usual.
* The fan-out pins the set's generation. If a rebuild replaces it mid-way, the next turn
  continues live from the upper bound of the last partition handed out, and an evaluator
  whose partition's generation is gone reads the same id range live. Either way each id
  range is read exactly once, so no follower is skipped or sent twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clarion.pipeline.messages import FanoutTask, RecipientBatch
from clarion.stores.base import FollowerStore, PartitionStore
from clarion.stores.records import PartitionRef
from clarion.types import UserId


@dataclass(slots=True)
class PartitionTurn:
    refs: list[PartitionRef]
    counts: list[int]
    cursor: UserId | None
    finished: bool
    generation: int


class PartitionPlanner:
    """The fan-out side: which partitions a turn hands out."""

    def __init__(
        self, partitions: PartitionStore, now: Callable[[], float], *, max_age_s: float
    ) -> None:
        self._partitions = partitions
        self._now = now
        self._max_age_s = max_age_s

    async def turn(self, task: FanoutTask, limit: int) -> PartitionTurn | None:
        """Up to ``limit`` partition references from ``task.batch_no`` on, or None: page the
        follower store live (no usable set, or the fan-out is already reading live)."""
        starting = task.batch_no == 0 and task.cursor is None
        if task.generation is None and not starting:
            return None
        current = await self._partitions.info(UserId(task.header.actor or ""))
        if current is None:
            return None
        if task.generation is None:
            if self._now() - current.refreshed_at > self._max_age_s:
                return None
        elif current.generation != task.generation:
            return None  # rebuilt meanwhile: carry on live from task.cursor
        end = min(task.batch_no + limit, current.partitions)
        numbers = range(task.batch_no, end)
        finished = end == current.partitions
        return PartitionTurn(
            refs=[current.ref(n) for n in numbers],
            counts=[current.counts[n] for n in numbers],
            cursor=None if finished else current.uppers[end - 1],
            finished=finished,
            generation=current.generation,
        )


class PartitionReader:
    """The evaluation side: turn partition references into recipients."""

    def __init__(self, partitions: PartitionStore, followers: FollowerStore) -> None:
        self._partitions = partitions
        self._followers = followers

    async def fill(self, batches: list[RecipientBatch]) -> list[RecipientBatch]:
        wanted: dict[tuple[UserId, int], list[int]] = {}
        for b in batches:
            if b.part is not None:
                wanted.setdefault((b.part.creator, b.part.generation), []).append(b.part.part_no)
        if not wanted:
            return batches
        loaded: dict[tuple[UserId, int, int], list[UserId]] = {}
        for (creator, generation), numbers in wanted.items():
            found = await self._partitions.members(creator, generation, numbers)
            loaded.update(((creator, generation, n), users) for n, users in found.items())
        filled: list[RecipientBatch] = []
        for b in batches:
            ref = b.part
            if ref is None:
                filled.append(b)
                continue
            users = loaded.get((ref.creator, ref.generation, ref.part_no))
            if users is None:  # that generation is gone: the same id range, live
                users = await self._followers.between(ref.creator, after=ref.after, upto=ref.upto)
            filled.append(RecipientBatch(b.header, b.batch_key, users))
        return filled


@dataclass(frozen=True, slots=True)
class RefreshResult:
    creator: UserId
    action: str
    """``built`` (first time), ``rebuilt`` (asked to, or partitions grew past twice their
    size) or ``refreshed`` (logged changes applied in place)."""
    partitions: int
    followers: int
    changes: int


async def refresh_partitions(
    partitions: PartitionStore,
    creator: UserId,
    *,
    size: int,
    now: float,
    full: bool = False,
) -> RefreshResult:
    """Bring one creator's partition set up to date: incrementally when it can."""
    current = await partitions.info(creator)
    if current is not None and not full:
        refreshed, changes = await partitions.refresh(creator, now=now)
        if max(refreshed.counts, default=0) <= 2 * refreshed.size:
            return RefreshResult(
                creator, "refreshed", refreshed.partitions, refreshed.followers, changes
            )
    built = await partitions.rebuild(creator, size=size, now=now)
    action = "built" if current is None else "rebuilt"
    return RefreshResult(creator, action, built.partitions, built.followers, 0)
