"""Kill switches announced through Redis: the store keeps the switches and their audit
trail; every create or lift also bumps a version number in Redis, which each worker reads
once per batch (``pipeline.switches``). A new switch is honoured by the next batch anywhere,
not at the next periodic re-read.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clarion.policy.killswitch import KillSwitch
from clarion.stores.base import KillSwitchStore

log = logging.getLogger(__name__)

_VERSION = "clarion:killswitches:version"


class AnnouncedKillSwitchStore:
    def __init__(self, store: KillSwitchStore, client: aioredis.Redis) -> None:
        self._store = store
        self._redis = client

    async def create(self, switch: KillSwitch) -> None:
        await self._store.create(switch)
        await self._announce()

    async def lift(self, switch_id: str, at: float, actor: str) -> KillSwitch | None:
        lifted = await self._store.lift(switch_id, at, actor)
        if lifted is not None:
            await self._announce()
        return lifted

    async def list(self, *, include_lifted: bool) -> list[KillSwitch]:
        return await self._store.list(include_lifted=include_lifted)

    async def version(self) -> int | None:
        """Changes whenever a switch is created or lifted; None when Redis cannot say."""
        try:
            value = await self._redis.get(_VERSION)
        except RedisError:
            return None
        return 0 if value is None else int(value)

    async def _announce(self) -> None:
        try:
            await self._redis.incr(_VERSION)
        except RedisError as exc:  # stored: workers still see it at their periodic re-read
            log.warning("kill switch announce failed: %s", exc)
