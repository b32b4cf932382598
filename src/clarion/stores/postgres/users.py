from __future__ import annotations

from collections.abc import Sequence

from clarion.postgres import PostgresDatabase
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
            " email_verified, phone_verified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (user_id) DO UPDATE SET"
            " email_bounced_at = CASE WHEN users.email IS NOT DISTINCT FROM excluded.email"
            " THEN users.email_bounced_at END,"
            " email = excluded.email, phone = excluded.phone, timezone = excluded.timezone,"
            " locale = excluded.locale, updated_at = excluded.updated_at,"
            " email_verified = excluded.email_verified, phone_verified = excluded.phone_verified",
            p.user_id,
            p.email,
            p.phone,
            p.timezone,
            p.locale,
            p.updated_at,
            p.email_verified,
            p.phone_verified,
        )

    async def get(self, user_id: UserId) -> UserProfile | None:
        row = await self._db.fetchrow(
            "SELECT user_id, email, phone, timezone, locale, updated_at, email_verified,"
            " phone_verified, email_bounced_at FROM users WHERE user_id = $1",
            user_id,
        )
        return None if row is None else UserProfile(UserId(row[0]), *row[1:])

    async def locales(self, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        return await self._column("locale", user_ids)

    async def timezones(self, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        return await self._column("timezone", user_ids)

    async def _column(self, column: str, user_ids: Sequence[UserId]) -> dict[UserId, str]:
        rows = await self._db.fetch(
            f"SELECT user_id, {column} FROM users WHERE user_id = ANY($1::text[])"
            f" AND {column} IS NOT NULL",
            list(user_ids),
        )
        return {UserId(r[0]): r[1] for r in rows}
