"""The active kill switches as each worker sees them.

Re-read at most every half second; where the store also announces changes (``version``,
with Redis: ``backends.redis.stores.killswitches``) a change is re-read on the next batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from clarion.policy.killswitch import KillSet
from clarion.stores.base import KillSwitchStore

REFRESH_S = 0.5
"""With evaluation time on top, a new switch is honoured everywhere within a second."""


@runtime_checkable
class AnnouncesChanges(Protocol):
    async def version(self) -> int | None:
        """A number that changes with every create or lift; None when unknown right now."""
        ...


class KillSwitchCache:
    def __init__(
        self,
        store: KillSwitchStore,
        *,
        refresh_s: float = REFRESH_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._announcer = store if isinstance(store, AnnouncesChanges) else None
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._current: KillSet | None = None
        self._read_at = 0.0
        self._version: int | None = None

    async def current(self) -> KillSet:
        # Monotonic time on purpose: this bounds how stale an operator's emergency stop can
        # be, which is not business time (the injected business clock may stand still).
        version = await self._announcer.version() if self._announcer is not None else None
        due = self._monotonic() - self._read_at >= self._refresh_s
        if self._current is None or due or (version is not None and version != self._version):
            self._current = KillSet.of(await self._store.list(include_lifted=False))
            self._read_at = self._monotonic()
            self._version = version
        return self._current
