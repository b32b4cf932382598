"""Frequency-cap counters in Redis (seed 001 "Frequency counter"): one sorted set per
capped person, member = the event's seq, score = when it was delivered.

Counts go up right after the store commits the deliveries they count
(``stores.redis.deliveries``), pipelined for the whole group of batches. Adding the same
event again changes nothing (``ZADD NX``), so a redelivered batch never counts twice.
Counting after the commit, not before, means a crash in between loses that one count: the
person may get one notification over their cap, which the seed accepts ("slight
over-delivery is acceptable"). The opposite order could hold someone back for a
notification their evaluation has not yet delivered.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clarion.errors import CountsUnavailableError
from clarion.policy.frequency import DAY_S
from clarion.stores.records import BatchResult
from clarion.types import UserId

_PREFIX = "clarion:freq:"


def _key(user: UserId) -> str:
    return _PREFIX + user


class RedisFrequencyStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def recent(self, user_ids: Sequence[UserId], since: float) -> dict[UserId, list[float]]:
        if not user_ids:
            return {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user in user_ids:
                    pipe.zrangebyscore(_key(user), f"({since!r}", "+inf", withscores=True)
                answers = await pipe.execute()
        except RedisError as exc:
            raise CountsUnavailableError(f"frequency counts unavailable: {exc}") from exc
        return {
            user: [score for _, score in members]
            for user, members in zip(user_ids, answers, strict=True)
            if members
        }

    async def count(self, results: Sequence[BatchResult], now: float) -> None:
        """Count each result's ``counted`` people as notified by its event at ``now``."""
        if not any(r.counted for r in results):
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for result in results:
                for user in result.counted:
                    key = _key(user)
                    pipe.zadd(key, {str(result.seq): now}, nx=True)
                    pipe.zremrangebyscore(key, "-inf", f"({now - DAY_S!r}")
                    pipe.expire(key, int(2 * DAY_S))
            await pipe.execute()
