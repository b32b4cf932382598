"""The per-sender breaker: a producer whose events keep killing workers is cut off.

One poison event is the dead-letter queue's job. The same bug in a producer, though, sends
the same poison again and again, and every copy costs workers their retries. So each
dead-lettered event is a strike against its sender; ``limit`` strikes within ``window_s``
block the sender at ingest (403) until an admin lets it back in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from clarion.stores.base import SenderGuardStore

log = logging.getLogger(__name__)


class SenderGuard:
    def __init__(
        self,
        store: SenderGuardStore,
        now: Callable[[], float],
        *,
        limit: int,
        window_s: float,
    ) -> None:
        self._store = store
        self._now = now
        self._limit = limit
        self._window_s = window_s

    async def strike(self, senders: Iterable[str], error: str) -> None:
        for sender in set(senders):
            blocked = await self._store.strike(
                sender, error, self._now(), limit=self._limit, window_s=self._window_s
            )
            if blocked:
                log.error(
                    "sender %s blocked: %d of its events dead-lettered within %gs (last: %s);"
                    " unblock with `clarion senders unblock %s` once the producer is fixed",
                    sender,
                    self._limit,
                    self._window_s,
                    error,
                    sender,
                )
