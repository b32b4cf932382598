"""How many streams one HTTP/2 connection may have open: a semaphore the peer can resize.

The peer announces MAX_CONCURRENT_STREAMS in SETTINGS and may change it at any time; a
stream over the limit is refused (or, by some servers, the whole connection dropped). Streams
already open keep their slot when the limit falls — new ones wait until enough have finished.
Waiters are served in order, one wake-up per freed slot.
"""

from __future__ import annotations

import asyncio
from collections import deque


class StreamSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved with the slot already counted as ours
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot in the same instant we were cancelled
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_use += 1
                waiter.set_result(None)
