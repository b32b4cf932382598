"""A per-client token bucket for the endpoints that take no API key (unsubscribe links).

Kept in the API process's memory: it is there to blunt a scanner or a guessing script, and
each API process holding its own buckets only multiplies the allowance by the process count.
"""

from __future__ import annotations

from clarion.clock import Clock
from clarion.errors import RateLimitedError
from clarion.ingest.ratelimit import Bucket, take

MAX_CLIENTS = 10_000
"""Forget every bucket past this many clients rather than grow without bound."""


class ClientLimiter:
    def __init__(self, clock: Clock, *, rate_per_s: float, burst_s: float) -> None:
        self._clock = clock
        self._rate_per_s = rate_per_s
        self._burst_s = burst_s
        self._buckets: dict[str, Bucket] = {}

    def check(self, client: str, what: str) -> None:
        """Spend one request for ``client`` or raise :class:`RateLimitedError`."""
        if len(self._buckets) >= MAX_CLIENTS:
            self._buckets.clear()
        bucket, wait = take(
            self._buckets.get(client),
            rate_per_s=self._rate_per_s,
            burst_s=self._burst_s,
            need=1,
            now=self._clock.now(),
        )
        self._buckets[client] = bucket
        if wait:
            raise RateLimitedError(f"too many {what} requests from this address", wait)
