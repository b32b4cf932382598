from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.pages import id_page
from clarion.campaigns import segments
from clarion.campaigns.segments import Condition
from clarion.stores.records import UserProfile
from clarion.types import UserId


class SqliteUserStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def put(self, profile: UserProfile) -> None:
        # A bounce sticks to the address that bounced: changing the email clears it, re-sending
        # the same address does not.
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO users (user_id, email, phone, timezone, locale, updated_at,"
                " email_verified, phone_verified, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET"
                " email_bounced_at = CASE WHEN users.email IS excluded.email"
                " THEN users.email_bounced_at END,"
                " email = excluded.email, phone = excluded.phone, timezone = excluded.timezone,"
                " locale = excluded.locale, updated_at = excluded.updated_at,"
                " email_verified = excluded.email_verified,"
                " phone_verified = excluded.phone_verified, attributes = excluded.attributes",
                (
                    profile.user_id,
                    profile.email,
                    profile.phone,
                    profile.timezone,
                    profile.locale,
                    profile.updated_at,
                    profile.email_verified,
                    profile.phone_verified,
                    orjson.dumps(profile.attributes).decode() if profile.attributes else None,
                ),
            )
        )

    async def get(self, user_id: UserId) -> UserProfile | None:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT user_id, email, phone, timezone, locale, updated_at, email_verified,"
                " phone_verified, email_bounced_at, attributes FROM users WHERE user_id = ?",
                (user_id,),
            ).fetchone()
        )
        if row is None:
            return None
        return UserProfile(
            UserId(row[0]),
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            bool(row[6]),
            bool(row[7]),
            row[8],
            orjson.loads(row[9]) if row[9] else {},
        )

    async def locales(self, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT u.user_id, u.locale FROM json_each(?) j"
                " CROSS JOIN users u ON u.user_id = j.value WHERE u.locale IS NOT NULL",
                (orjson.dumps(list(user_ids)),),
            ).fetchall()
        )
        return {UserId(r[0]): r[1] for r in rows}

    async def matching(
        self, conditions: Sequence[Condition] | None, after: str | None, limit: int
    ) -> list[UserId]:
        params: list[Any] = [after or ""]
        sql = "SELECT u.user_id AS id FROM users u WHERE u.user_id > ?1"
        if conditions:
            sql += " AND " + _where(conditions, params)
        params.append(limit)
        sql += f" ORDER BY u.user_id LIMIT ?{len(params)}"
        return await self._db.read(lambda c: id_page(c, sql, params))

    async def count_matching(self, conditions: Sequence[Condition] | None) -> int:
        params: list[Any] = []
        sql = "SELECT count(*) FROM users u"
        if conditions:
            sql += " WHERE " + _where(conditions, params)
        row = await self._db.read(lambda c: c.execute(sql, params).fetchone())
        return int(row[0])

    async def timezones(self, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT u.user_id, u.timezone FROM json_each(?) j"
                " CROSS JOIN users u ON u.user_id = j.value WHERE u.timezone IS NOT NULL",
                (orjson.dumps(list(user_ids)),),
            ).fetchall()
        )
        return {UserId(r[0]): r[1] for r in rows}


def _where(conditions: Sequence[Condition], params: list[Any]) -> str:
    def param(value: Any) -> str:  # numbered: a compiled condition may use one twice
        params.append(value)
        return f"?{len(params)}"

    return segments.where(list(conditions), "sqlite", param)
