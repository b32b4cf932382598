"""The active kill switches as each worker sees them: re-read at most every half second."""

from __future__ import annotations

import time
from collections.abc import Callable

from clarion.policy.killswitch import KillSet
from clarion.stores.base import KillSwitchStore

REFRESH_S = 0.5
"""With evaluation time on top, a new switch is honoured everywhere within a second."""


class KillSwitchCache:
    def __init__(
        self,
        store: KillSwitchStore,
        *,
        refresh_s: float = REFRESH_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._current: KillSet | None = None
        self._read_at = 0.0

    async def current(self) -> KillSet:
        # Monotonic time on purpose: this bounds how stale an operator's emergency stop can
        # be, which is not business time (the injected business clock may stand still).
        if self._current is None or self._monotonic() - self._read_at >= self._refresh_s:
            self._current = KillSet.of(await self._store.list(include_lifted=False))
            self._read_at = self._monotonic()
        return self._current
