"""Provider health in Redis: every send batch of every worker, on every machine, admits
against and reports into its provider's record, which makes it the hottest shared record
there is. In a database it is one row that all push workers lock in turn; here it is a key
changed optimistically (WATCH, then MULTI/EXEC; a change that lost the race is computed
again on the new value). The change functions are pure (``resilience.breaker``), so
computing one twice is harmless.

Breakers and send buckets are advisory state, not records of what was delivered: losing
them with a Redis restart only means starting closed with full buckets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from clarion.resilience.breaker import Health

T = TypeVar("T")

_PROVIDERS = "clarion:health:providers"


def _key(provider: str) -> str:
    return f"clarion:health:{provider}"


class RedisProviderHealthStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def update(self, provider: str, change: Callable[[Health], tuple[Health, T]]) -> T:
        key = _key(provider)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    before = Health() if raw is None else Health.from_json(orjson.loads(raw))
                    after, answer = change(before)
                    if after == before:
                        return answer  # leaving the pipeline unwatches
                    pipe.multi()  # type: ignore[no-untyped-call]  # (redis-py leaves it untyped)
                    pipe.set(key, orjson.dumps(after.to_json()))
                    pipe.sadd(_PROVIDERS, provider)
                    await pipe.execute()
                    return answer
                except WatchError:
                    continue  # another worker changed it first: decide again on its value

    async def all(self) -> dict[str, Health]:
        names = sorted(
            n.decode() if isinstance(n, bytes) else n
            for n in await self._redis.smembers(_PROVIDERS)
        )
        if not names:
            return {}
        docs = await self._redis.mget([_key(n) for n in names])
        return {
            name: Health.from_json(orjson.loads(doc))
            for name, doc in zip(names, docs, strict=True)
            if doc is not None
        }
