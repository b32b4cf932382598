"""The device registry and the address book channels deliver to.

A token belongs to whoever registered it last (a phone changing hands moves its token), each
person keeps at most ``max_per_user`` devices (the least recently seen is dropped), and
provider feedback marks devices invalid — except a token registered again after the moment
the provider said it died, which is a new registration.

Lookups for a batch are driven from its id list with ``CROSS JOIN``, which SQLite never
reorders: left to itself the planner may walk every device through the platform index and
probe the list for each one (measured: 2.3 s per 1,000-person batch at 20,000 devices).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.models import Channel
from clarion.stores.records import Address, Device, Reach
from clarion.stores.rows import DELIVERABLE as _DELIVERABLE
from clarion.stores.rows import DEVICE_COLUMNS as _COLUMNS
from clarion.stores.rows import OUTSIDE, addresses, reach, reach_query
from clarion.stores.rows import PUSH_PLATFORMS as _PUSH_PLATFORMS
from clarion.stores.rows import device as _device
from clarion.types import UserId


class SqliteDeviceStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def register(self, device: Device, *, max_per_user: int) -> list[str]:
        return await self._db.write(lambda c: _register(c, device, max_per_user))

    async def remove(self, user_id: UserId, device_id: str) -> bool:
        return await self._db.write(
            lambda c: (
                c.execute(
                    "DELETE FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
                ).rowcount
                > 0
            )
        )

    async def of_user(self, user_id: UserId) -> list[Device]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM devices WHERE user_id = ? ORDER BY last_seen DESC",
                (user_id,),
            ).fetchall()
        )
        return [_device(r) for r in rows]

    async def addresses(
        self, channel: Channel, user_ids: Sequence[UserId]
    ) -> dict[UserId, list[Address]]:
        ids = orjson.dumps(list(user_ids))
        if channel is Channel.EMAIL:
            sql = (
                "SELECT u.user_id, 'email', 'smtp', u.email, '{}', 0 FROM json_each(?) j"
                " CROSS JOIN users u ON u.user_id = j.value WHERE u.email IS NOT NULL"
                " AND u.email_verified AND u.email_bounced_at IS NULL"
            )
        elif channel is Channel.SMS:
            sql = (
                "SELECT u.user_id, 'sms', 'sms_twilio', u.phone, '{}', 0 FROM json_each(?) j"
                " CROSS JOIN users u ON u.user_id = j.value WHERE u.phone IS NOT NULL"
                " AND u.phone_verified"
            )
        else:
            platforms = "('webhook')" if channel is Channel.WEBHOOK else _PUSH_PLATFORMS
            sql = (
                "SELECT d.user_id, d.device_id, d.platform, d.token, d.meta, d.registered_at"
                " FROM json_each(?) j CROSS JOIN devices d ON d.user_id = j.value"
                f" WHERE d.state IN {_DELIVERABLE} AND d.platform IN {platforms}"
            )
        rows = await self._db.read(lambda c: c.execute(sql, (ids,)).fetchall())
        return addresses(rows)

    async def reachable(
        self, user_ids: Sequence[UserId], now: float, channels: Collection[Channel] = OUTSIDE
    ) -> dict[UserId, Reach]:
        wanted = tuple(c for c in OUTSIDE if c in channels)
        if not wanted:
            return {}
        sql = _reachable(wanted)
        rows = await self._db.read(
            lambda c: c.execute(sql, (now, orjson.dumps(list(user_ids)))).fetchall()
        )
        return {UserId(r[0]): reach(wanted, r[1:]) for r in rows}

    async def prune(
        self, now: float, *, stale_after_s: float, expire_after_s: float
    ) -> tuple[int, int]:
        def _prune(c: sqlite3.Connection) -> tuple[int, int]:
            expired = c.execute(
                f"UPDATE devices SET state = 'expired' WHERE state IN {_DELIVERABLE}"
                " AND last_seen < ?",
                (now - expire_after_s,),
            ).rowcount
            stale = c.execute(
                "UPDATE devices SET state = 'stale' WHERE state = 'active' AND last_seen < ?",
                (now - stale_after_s,),
            ).rowcount
            return stale, expired

        return await self._db.write(_prune)


@functools.cache
def _reachable(wanted: tuple[Channel, ...]) -> str:
    return reach_query(wanted, "json_each(?2) j", "j.value", "?1")


def _register(c: sqlite3.Connection, device: Device, max_per_user: int) -> list[str]:
    d = device
    c.execute(  # a token is one device: it moves to whoever registers it now
        "DELETE FROM devices WHERE platform = ? AND token = ?"
        " AND NOT (user_id = ? AND device_id = ?)",
        (d.platform.value, d.token, d.user_id, d.device_id),
    )
    c.execute(
        f"INSERT INTO devices ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, NULL, NULL)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET platform = excluded.platform,"
        " token = excluded.token, meta = excluded.meta, app_version = excluded.app_version,"
        " state = 'active', registered_at = excluded.registered_at,"
        " last_seen = excluded.last_seen, invalidated_at = NULL, reason = NULL",
        (
            d.user_id,
            d.device_id,
            d.platform.value,
            d.token,
            orjson.dumps(d.meta).decode(),
            d.app_version,
            d.registered_at,
            d.last_seen,
        ),
    )
    dropped = [
        r[0]
        for r in c.execute(
            "SELECT device_id FROM devices WHERE user_id = ?"
            " ORDER BY last_seen DESC, registered_at DESC LIMIT -1 OFFSET ?",
            (d.user_id, max_per_user),
        ).fetchall()
    ]
    c.executemany(
        "DELETE FROM devices WHERE user_id = ? AND device_id = ?",
        [(d.user_id, device_id) for device_id in dropped],
    )
    return dropped


def apply_invalidations(c: sqlite3.Connection, invalidations: list[Any], now: float) -> None:
    """Provider feedback, applied inside the commit that records the sends."""
    for item in invalidations:
        if item.ref == "email":
            c.execute(
                "UPDATE users SET email_bounced_at = ? WHERE user_id = ?", (now, item.user_id)
            )
        elif item.ref == "sms":
            c.execute("UPDATE users SET phone_verified = 0 WHERE user_id = ?", (item.user_id,))
        else:
            c.execute(
                "UPDATE devices SET state = 'invalid', invalidated_at = ?, reason = ?"
                " WHERE user_id = ? AND device_id = ? AND (? IS NULL OR registered_at < ?)",
                (now, item.reason, item.user_id, item.ref, item.since, item.since),
            )
