from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from clarion.backends.postgres import PostgresDatabase
from clarion.campaigns import segments
from clarion.campaigns.segments import Condition
from clarion.stores.records import UserProfile
from clarion.types import UserId


class PostgresUserStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def put(self, profile: UserProfile) -> None:
        # A bounce sticks to the address that bounced: changing the email clears it.
        p = profile
        await self._db.execute(
            "INSERT INTO users (user_id, email, phone, timezone, locale, updated_at,"
            " email_verified, phone_verified, attributes)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)"
            " ON CONFLICT (user_id) DO UPDATE SET"
            " email_bounced_at = CASE WHEN users.email IS NOT DISTINCT FROM excluded.email"
            " THEN users.email_bounced_at END,"
            " email = excluded.email, phone = excluded.phone, timezone = excluded.timezone,"
            " locale = excluded.locale, updated_at = excluded.updated_at,"
            " email_verified = excluded.email_verified, phone_verified = excluded.phone_verified,"
            " attributes = excluded.attributes",
            p.user_id,
            p.email,
            p.phone,
            p.timezone,
            p.locale,
            p.updated_at,
            p.email_verified,
            p.phone_verified,
            orjson.dumps(p.attributes).decode() if p.attributes else None,
        )

    async def get(self, user_id: UserId) -> UserProfile | None:
        row = await self._db.fetchrow(
            "SELECT user_id, email, phone, timezone, locale, updated_at, email_verified,"
            " phone_verified, email_bounced_at, attributes::text FROM users WHERE user_id = $1",
            user_id,
        )
        if row is None:
            return None
        attributes = orjson.loads(row[9]) if row[9] else {}
        return UserProfile(
            UserId(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
            attributes,
        )  # fmt: skip

    async def locales(self, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        return await self._column("locale", user_ids)

    async def matching(
        self, conditions: Sequence[Condition] | None, after: str | None, limit: int
    ) -> list[UserId]:
        if not conditions:
            rows = await self._db.fetch(
                "SELECT user_id FROM users WHERE user_id > $1 ORDER BY user_id LIMIT $2",
                after or "",
                limit,
            )
            return [UserId(r[0]) for r in rows]
        # Walk the primary key a stretch at a time and filter each stretch. Asked for the
        # first matches in key order directly, the planner (which cannot estimate conditions
        # on JSON attributes) scans and sorts the whole table for every page.
        params: list[Any] = ["", _STRETCH]
        sql = (
            f"SELECT array_agg(u.user_id ORDER BY u.user_id)"
            f" FILTER (WHERE {_where(conditions, params)}), max(u.user_id)"
            " FROM (SELECT user_id, attributes FROM users WHERE user_id > $1"
            " ORDER BY user_id LIMIT $2) u"
        )
        found: list[UserId] = []
        cursor = after or ""
        while len(found) < limit:
            params[0] = cursor
            row = await self._db.fetchrow(sql, *params)  # an aggregate: always one row
            assert row is not None
            matched, last = row
            if last is None:
                break  # the end of the table
            found += matched or ()
            cursor = last
        return found[:limit]

    async def count_matching(self, conditions: Sequence[Condition] | None) -> int:
        params: list[Any] = []
        sql = "SELECT count(*) FROM users u"
        if conditions:
            sql += " WHERE " + _where(conditions, params)
        return int(await self._db.fetchval(sql, *params))

    async def timezones(self, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        return await self._column("timezone", user_ids)

    async def _column(self, column: str, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        rows = await self._db.fetch(
            f"SELECT user_id, {column} FROM users WHERE user_id = ANY($1::text[])"
            f" AND {column} IS NOT NULL",
            list(user_ids),
        )
        return {UserId(r[0]): r[1] for r in rows}


_STRETCH = 10_000
"""People a segment page looks at per query."""


def _where(conditions: Sequence[Condition], params: list[Any]) -> str:
    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    return segments.where(list(conditions), "postgres", param)
