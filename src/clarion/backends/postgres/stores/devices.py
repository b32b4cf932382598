"""The device registry and the address book channels deliver to (see
``backends.sqlite.stores.devices`` for the rules: a token moves to whoever registers it
last, at most ``max_per_user`` devices each, provider feedback invalidates)."""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from typing import Any

import orjson

from clarion.backends.postgres import Connection, PostgresDatabase
from clarion.models import Channel
from clarion.stores.records import Address, Device, Reach
from clarion.stores.rows import DELIVERABLE as _DELIVERABLE
from clarion.stores.rows import DEVICE_COLUMNS, OUTSIDE, addresses, device, reach, reach_query
from clarion.stores.rows import PUSH_PLATFORMS as _PUSH_PLATFORMS
from clarion.types import UserId


@functools.cache
def _reachable(wanted: tuple[Channel, ...]) -> str:
    return reach_query(wanted, "unnest($1::text[]) AS j(u)", "j.u", "$2::float8")


class PostgresDeviceStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def register(self, d: Device, *, max_per_user: int) -> list[str]:
        async with self._db.transaction() as c:
            await c.execute(  # a token is one device: it moves to whoever registers it now
                "DELETE FROM devices WHERE platform = $1 AND token = $2"
                " AND NOT (user_id = $3 AND device_id = $4)",
                d.platform.value,
                d.token,
                d.user_id,
                d.device_id,
            )
            await c.execute(
                f"INSERT INTO devices ({DEVICE_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, NULL, NULL)"
                " ON CONFLICT (user_id, device_id) DO UPDATE SET platform = excluded.platform,"
                " token = excluded.token, meta = excluded.meta,"
                " app_version = excluded.app_version, state = 'active',"
                " registered_at = excluded.registered_at, last_seen = excluded.last_seen,"
                " invalidated_at = NULL, reason = NULL",
                d.user_id,
                d.device_id,
                d.platform.value,
                d.token,
                orjson.dumps(d.meta).decode(),
                d.app_version,
                d.registered_at,
                d.last_seen,
            )
            dropped = await c.fetch(
                "DELETE FROM devices WHERE user_id = $1 AND device_id IN (SELECT device_id"
                " FROM devices WHERE user_id = $1 ORDER BY last_seen DESC, registered_at DESC"
                " OFFSET $2) RETURNING device_id",
                d.user_id,
                max_per_user,
            )
            return [r[0] for r in dropped]

    async def remove(self, user_id: UserId, device_id: str) -> bool:
        gone = await self._db.execute(
            "DELETE FROM devices WHERE user_id = $1 AND device_id = $2", user_id, device_id
        )
        return gone > 0

    async def of_user(self, user_id: UserId) -> list[Device]:
        rows = await self._db.fetch(
            f"SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 ORDER BY last_seen DESC",
            user_id,
        )
        return [device(r) for r in rows]

    async def addresses(
        self, channel: Channel, user_ids: Sequence[UserId]
    ) -> dict[UserId, list[Address]]:
        if channel is Channel.EMAIL:
            sql = (
                "SELECT user_id, 'email', 'smtp', email, '{}', 0 FROM users"
                " WHERE user_id = ANY($1::text[]) AND email IS NOT NULL AND email_verified"
                " AND email_bounced_at IS NULL"
            )
        elif channel is Channel.SMS:
            sql = (
                "SELECT user_id, 'sms', 'sms_twilio', phone, '{}', 0 FROM users"
                " WHERE user_id = ANY($1::text[]) AND phone IS NOT NULL AND phone_verified"
            )
        else:
            platforms = "('webhook')" if channel is Channel.WEBHOOK else _PUSH_PLATFORMS
            sql = (
                "SELECT user_id, device_id, platform, token, meta, registered_at FROM devices"
                f" WHERE user_id = ANY($1::text[]) AND state IN {_DELIVERABLE}"
                f" AND platform IN {platforms}"
            )
        return addresses(await self._db.fetch(sql, list(user_ids)))

    async def reachable(
        self, user_ids: Sequence[UserId], now: float, channels: Collection[Channel] = OUTSIDE
    ) -> dict[UserId, Reach]:
        wanted = tuple(c for c in OUTSIDE if c in channels)
        if not wanted:
            return {}
        timed = (now,) if Channel.LIVE in wanted else ()  # only the stream check reads it
        rows = await self._db.fetch(_reachable(wanted), list(user_ids), *timed)
        return {UserId(r[0]): reach(wanted, r[1:]) for r in rows}

    async def prune(
        self, now: float, *, stale_after_s: float, expire_after_s: float
    ) -> tuple[int, int]:
        async with self._db.transaction() as c:
            expired = await c.fetchval(
                f"WITH x AS (UPDATE devices SET state = 'expired' WHERE state IN {_DELIVERABLE}"
                " AND last_seen < $1 RETURNING 1) SELECT count(*) FROM x",
                now - expire_after_s,
            )
            stale = await c.fetchval(
                "WITH x AS (UPDATE devices SET state = 'stale' WHERE state = 'active'"
                " AND last_seen < $1 RETURNING 1) SELECT count(*) FROM x",
                now - stale_after_s,
            )
            return int(stale), int(expired)


async def apply_invalidations(c: Connection, invalidations: list[Any], now: float) -> None:
    """Provider feedback, applied inside the commit that records the sends."""
    for item in invalidations:
        if item.ref == "email":
            await c.execute(
                "UPDATE users SET email_bounced_at = $1 WHERE user_id = $2", now, item.user_id
            )
        elif item.ref == "sms":
            await c.execute(
                "UPDATE users SET phone_verified = false WHERE user_id = $1", item.user_id
            )
        else:
            await c.execute(
                "UPDATE devices SET state = 'invalid', invalidated_at = $1, reason = $2"
                " WHERE user_id = $3 AND device_id = $4"
                " AND ($5::float8 IS NULL OR registered_at < $5)",
                now,
                item.reason,
                item.user_id,
                item.ref,
                item.since,
            )
