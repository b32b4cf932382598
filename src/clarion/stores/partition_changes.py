"""Applying logged follows and unfollows to a partition set inside its fixed bounds: the
rule both backends' ``PartitionStore.refresh`` follow, so an incremental refresh matches a
full rebuild whichever database holds the partitions."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from clarion.types import UserId


class ChangedPartitions:
    """The partitions a log of ``(id, follower, added)`` changes touch, and their new members.

    ``uppers`` are the set's upper bounds (the last, ``None``, takes every id above the rest).
    """

    def __init__(self, uppers: Sequence[UserId | None], changes: Sequence[Any]) -> None:
        self._bounds = [u for u in uppers[:-1] if u is not None]
        self._changes = [(str(c[1]), bool(c[2])) for c in changes]
        self.touched = sorted({self._part_of(f) for f, _ in self._changes})
        """Partition numbers to load (and write back)."""

    def _part_of(self, follower: str) -> int:
        return bisect.bisect_left(self._bounds, follower)

    def apply(self, members: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
        """The touched partitions' members after the changes, in id order, from their
        members before (``members``, one entry per touched partition)."""
        after = {n: set(members.get(n, [])) for n in self.touched}
        for follower, added in self._changes:
            ids = after[self._part_of(follower)]
            (ids.add if added else ids.discard)(follower)
        return {n: sorted(ids) for n, ids in after.items()}
