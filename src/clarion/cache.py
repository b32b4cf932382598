"""A tiny time-bounded cache for control-plane lookups (keys, types) on the request path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from clarion.clock import Clock

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Remembers each loaded value (``None`` included) for ``ttl_s`` seconds.

    The bound is what makes it safe: a revoked key or a changed type is honoured everywhere
    within ``ttl_s``, without any invalidation protocol between processes.
    """

    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        clock: Clock,
        *,
        ttl_s: float,
        max_size: int = 10_000,
    ) -> None:
        self._load = load
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_size = max_size
        self._entries: dict[K, tuple[float, V]] = {}

    async def get(self, key: K) -> V:
        now = self._clock.now()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await self._load(key)
        if len(self._entries) >= self._max_size:
            self._entries.clear()
        self._entries[key] = (now + self._ttl_s, value)
        return value

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
