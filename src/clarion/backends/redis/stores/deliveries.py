"""The delivery store's hot path in Redis, after the store's commit: "this batch is
recorded" markers.

The store's batch marker, committed with the batch's effects, stays the one authority on
exactly-once. Redis only learns of a batch once that commit is done, so "recorded" from
Redis is always true and answers a redelivery without the store; "not recorded" is asked
of the store again (a marker may be missing after a crash, a Redis restart or expiry).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clarion.live.feed import CHANNEL, encode
from clarion.policy.frequency import DAY_S
from clarion.slo import Counts
from clarion.stores.base import DeliveryStore
from clarion.stores.records import BatchResult, DeliveryRecord, Recorded
from clarion.types import EventId, Seq, UserId

log = logging.getLogger(__name__)

_RECORDED = "clarion:recorded:"
_MARKER_LIFE_S = int(DAY_S)
"""Redeliveries come within minutes; a day of markers is plenty (the store keeps them all)."""


def _markers(seq: Seq) -> str:
    return f"{_RECORDED}{seq}"


class RedisFrontedDeliveryStore:
    """The store's ``DeliveryStore`` with a cache of which batches are recorded."""

    def __init__(self, store: DeliveryStore, client: aioredis.Redis) -> None:
        self._store = store
        self._redis = client

    async def record_batches(
        self, results: Sequence[BatchResult], worker: str, now: float
    ) -> Recorded:
        new = await self._store.record_batches(results, worker, now)
        try:
            await self._mark(results)
            if new.streamed:  # ring the API processes' doorbell (``live.feed``)
                await self._redis.publish(CHANNEL, encode(new.streamed))
        except RedisError as exc:  # the store's markers still answer; streams catch up
            log.warning("delivery cache write failed: %s", exc)
        return new

    async def recorded(self, keys: Sequence[tuple[Seq, str]]) -> set[tuple[Seq, str]]:
        if not keys:
            return set()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for seq, batch_key in keys:
                    pipe.sismember(_markers(seq), batch_key)
                known = {k for k, hit in zip(keys, await pipe.execute(), strict=True) if hit}
        except RedisError as exc:
            log.warning("delivery cache unavailable: %s", exc)
            known = set()
        unknown = [k for k in keys if k not in known]
        return known | (await self._store.recorded(unknown) if unknown else set())

    async def _mark(self, results: Sequence[BatchResult]) -> None:
        by_seq: dict[Seq, list[str]] = {}
        for result in results:
            by_seq.setdefault(result.seq, []).append(result.batch_key)
        async with self._redis.pipeline(transaction=False) as pipe:
            for seq, batch_keys in by_seq.items():
                pipe.sadd(_markers(seq), *batch_keys)
                pipe.expire(_markers(seq), _MARKER_LIFE_S)
            await pipe.execute()

    async def for_user(
        self, user_id: UserId, *, event_id: EventId | None, limit: int
    ) -> list[DeliveryRecord]:
        return await self._store.for_user(user_id, event_id=event_id, limit=limit)

    async def slo_counts(self, since: float, until: float) -> list[Counts]:
        return await self._store.slo_counts(since, until)

    async def receipt(self, provider_ref: str, outcome: str, reason: str, at: float) -> bool:
        return await self._store.receipt(provider_ref, outcome, reason, at)

    async def latest(
        self, keys: Sequence[tuple[UserId, str]]
    ) -> dict[tuple[UserId, str], tuple[Seq, float]]:
        return await self._store.latest(keys)
