"""A preference cache in Redis with versioned entries (seed 001, "Strong vs eventual
consistency"): one entry per person, ``<version>|<updated_at>|<document>``, or ``0`` for
someone with no document.

Read-your-writes: ``put`` commits to the store, then writes the new version into the cache
before it returns. Entries are only ever replaced by an equal or newer version (one Lua
script), so an evaluator that read the store just before a change and fills the cache just
after cannot put the old document back. If that write fails (Redis away), the stale entry
lives at most ``TTL_S`` — the seed's bound on staleness.

Who is cached: the people of small claims — direct notifications to active users, who get
many, so entries are hit. A fan-out batch's thousand recipients are mostly distinct and
mostly without a document; for them the cache would miss and add its own cost on top of
the store's one indexed read (measured in ``docs/capacity.md``), so they go straight to the
store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clarion.stores.base import PreferenceStore
from clarion.stores.records import AuditEntry, StoredPreferences
from clarion.types import JSONObject, UserId

log = logging.getLogger(__name__)

TTL_S = 5
CACHED_UP_TO = 256
"""Lookups of more people than this bypass the cache (fan-out batches)."""

_PREFIX = "clarion:pref:"
_NONE = b"0"

# ARGV[1]: lifetime (s); then per key its entry's version and the entry. Keeps whichever is
# newer, so a late fill with an older version never undoes a write.
_FILL = """
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[2 * i])
  local current = redis.call('GET', key)
  local have = -1
  if current then have = tonumber(string.match(current, '^%d+')) end
  if version >= have then redis.call('SET', key, ARGV[2 * i + 1], 'EX', ARGV[1]) end
end
return 0
"""


def _entry(record: StoredPreferences | None) -> bytes:
    if record is None:
        return _NONE
    raw = record.raw.encode() if isinstance(record.raw, str) else record.raw
    return b"%d|%r|" % (record.version, record.updated_at) + raw


def _record(user: UserId, value: bytes | str) -> StoredPreferences | None:
    entry = value.encode() if isinstance(value, str) else value
    if entry == _NONE:
        return None
    version, updated_at, raw = entry.split(b"|", 2)
    return StoredPreferences(user, raw, int(version), float(updated_at))


class CachedPreferenceStore:
    def __init__(self, store: PreferenceStore, client: aioredis.Redis) -> None:
        self._store = store
        self._redis = client
        self._fill = client.register_script(_FILL)

    async def get(self, user_id: UserId) -> StoredPreferences | None:
        return (await self.load_many([user_id])).get(user_id)

    async def load_many(self, user_ids: Sequence[UserId]) -> dict[UserId, StoredPreferences]:
        if len(user_ids) > CACHED_UP_TO:
            return await self._store.load_many(user_ids)
        users = list(dict.fromkeys(user_ids))
        try:
            entries = await self._redis.mget([_PREFIX + u for u in users])
        except RedisError as exc:
            log.warning("preference cache unavailable: %s", exc)
            return await self._store.load_many(users)
        found: dict[UserId, StoredPreferences] = {}
        missed: list[UserId] = []
        for user, entry in zip(users, entries, strict=True):
            if entry is None:
                missed.append(user)
            elif (record := _record(user, entry)) is not None:
                found[user] = record
        if missed:
            loaded = await self._store.load_many(missed)
            found |= loaded
            await self._remember({u: loaded.get(u) for u in missed})
        return found

    async def documents(self, user_ids: Sequence[UserId]) -> dict[str, list[UserId]]:
        if len(user_ids) > CACHED_UP_TO:
            return await self._store.documents(user_ids)
        groups: dict[str, list[UserId]] = {}
        for user, record in (await self.load_many(user_ids)).items():
            raw = record.raw if isinstance(record.raw, str) else record.raw.decode()
            groups.setdefault(raw, []).append(user)
        return groups

    async def put(
        self,
        user_id: UserId,
        doc: JSONObject,
        at: float,
        actor: str,
        *,
        expected_version: int | None = None,
    ) -> StoredPreferences:
        stored = await self._store.put(user_id, doc, at, actor, expected_version=expected_version)
        await self._remember({user_id: stored})
        return stored

    async def history(self, user_id: UserId, *, limit: int) -> list[AuditEntry]:
        return await self._store.history(user_id, limit=limit)

    async def _remember(self, records: dict[UserId, StoredPreferences | None]) -> None:
        args: list[int | bytes] = [TTL_S]
        for record in records.values():
            args += [0 if record is None else record.version, _entry(record)]
        try:
            await self._fill(keys=[_PREFIX + u for u in records], args=args)
        except RedisError as exc:
            log.warning("preference cache write failed (stale for %ds at most): %s", TTL_S, exc)
