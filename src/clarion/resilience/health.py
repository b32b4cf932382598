"""One worker's door to the shared provider health: may I send, and how did it go.

Both calls are on the delivery hot path, so they avoid the write lock when nothing would
change: an admission that moves no bucket and no breaker is answered from a read, and
while a provider is healthy, successes are counted locally and written at most once a
second (failures and 429s are written at once — they are what moves the breaker).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from clarion.resilience.breaker import (
    Admission,
    BreakerSettings,
    BreakerState,
    Health,
    admit,
    report,
)
from clarion.stores.base import ProviderHealthStore

FLUSH_EVERY_S = 1.0


class ProviderHealth:
    def __init__(
        self,
        store: ProviderHealthStore,
        now: Callable[[], float],
        settings: BreakerSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._now = now
        self.settings = settings
        self._monotonic = monotonic
        self._unreported: dict[str, int] = {}
        self._flushed_at: dict[str, float] = {}
        self._seen: dict[str, BreakerState] = {}
        """The state each provider had at our last admission."""

    async def admit(
        self, provider: str, want: int, *, retry: bool, rate_per_s: float | None
    ) -> Admission:
        decide = partial(
            admit,
            want=want,
            retry=retry,
            now=self._now(),
            rate_per_s=rate_per_s,
            settings=self.settings,
        )
        known = (await self._store.all()).get(provider, Health())
        after, answer = decide(known)
        if after != known:
            answer = await self._store.update(provider, decide)
        self._seen[provider] = answer.state
        return answer

    async def report(
        self, provider: str, *, sent: int, failed: int, throttled: bool
    ) -> BreakerState | None:
        """Count an outcome; returns the breaker's state when it was written, else None."""
        if not sent and not throttled:
            return None
        earlier = self._unreported.get(provider, 0)
        healthy = self._seen.get(provider, BreakerState.CLOSED) is BreakerState.CLOSED
        quiet = healthy and not failed and not throttled
        recent = self._monotonic() - self._flushed_at.get(provider, 0.0) < FLUSH_EVERY_S
        if quiet and recent:
            self._unreported[provider] = earlier + sent
            return None
        self._unreported[provider] = 0
        self._flushed_at[provider] = self._monotonic()

        def count(health: Health) -> tuple[Health, BreakerState]:
            now = self._now()
            # The successes held back came first: counted apart, they do not break this
            # answer's run of failures.
            if earlier:
                health = report(
                    health, sent=earlier, failed=0, throttled=False, now=now, settings=self.settings
                )
            moved = report(
                health,
                sent=sent,
                failed=failed,
                throttled=throttled,
                now=now,
                settings=self.settings,
            )
            return moved, moved.state

        return await self._store.update(provider, count)

    async def states(self) -> dict[str, Health]:
        return await self._store.all()
