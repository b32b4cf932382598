"""Campaigns in PostgreSQL. Every write of the expansion is fenced: it carries the token
its writer got with the lease, and is refused once anyone took the campaign over (a
lease that ran out) or an operator paused or cancelled it (which moves the token)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from clarion.backends.postgres import PostgresDatabase
from clarion.backends.postgres.stores.events import ADVANCE, INSERT_EVENTS, enqueue
from clarion.broker import Outbound
from clarion.campaigns.model import MOVES, Campaign, CampaignState
from clarion.models import Event
from clarion.stores.accepting import event_row

_COLUMNS = (
    "id, sender, doc, state, start_at, rollout_percent, created_at, updated_at, seq,"
    " band_from, band_to, cursor, pages, targeted, token, paced_until"
)


def campaign_of(row: Any) -> Campaign:
    return Campaign(
        row[0], row[1], orjson.loads(row[2]), CampaignState(row[3]), row[4], row[5], row[6],
        row[7], row[8], row[9], row[10], row[11], int(row[12]), int(row[13]), int(row[14]),
        row[15],
    )  # fmt: skip


class PostgresCampaignStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create(self, c: Campaign) -> None:
        await self._db.execute(
            f"INSERT INTO campaigns ({_COLUMNS}) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            c.id, c.sender, orjson.dumps(c.doc).decode(), c.state.value, c.start_at,
            c.rollout_percent, c.created_at, c.updated_at, c.seq, c.band_from, c.band_to,
            c.cursor, c.pages, c.targeted, c.token, c.paced_until,
        )  # fmt: skip

    async def get(self, campaign_id: str) -> Campaign | None:
        sql = f"SELECT {_COLUMNS} FROM campaigns WHERE id = $1"
        row = await self._db.fetchrow(sql, campaign_id)
        return None if row is None else campaign_of(row)

    async def listed(self, sender: str | None) -> list[Campaign]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM campaigns WHERE $1::text IS NULL OR sender = $1"
            " ORDER BY created_at DESC, id",
            sender,
        )
        return [campaign_of(r) for r in rows]

    async def move(self, campaign_id: str, action: str, now: float) -> Campaign | None:
        allowed, to = MOVES[action]
        await self._db.execute(
            "UPDATE campaigns SET state = $1, token = token + 1, lease_until = 0,"
            " updated_at = $2 WHERE id = $3 AND state = ANY($4::text[])",
            to.value,
            now,
            campaign_id,
            [s.value for s in allowed],
        )
        return await self.get(campaign_id)

    async def raise_rollout(self, campaign_id: str, percent: int, now: float) -> Campaign | None:
        await self._db.execute(
            "UPDATE campaigns SET rollout_percent = greatest(rollout_percent, $1),"
            " updated_at = $2, state = CASE WHEN state = 'completed' THEN 'running'"
            " ELSE state END WHERE id = $3 AND state <> 'cancelled'",
            percent,
            now,
            campaign_id,
        )
        return await self.get(campaign_id)

    async def claim(self, owner: str, now: float, lease_s: float, limit: int) -> list[Campaign]:
        rows = await self._db.fetch(
            "UPDATE campaigns SET state = 'running', lease_owner = $1, lease_until = $2,"
            " token = token + 1, updated_at = $3 WHERE id IN (SELECT id FROM campaigns"
            " WHERE state IN ('scheduled', 'running') AND start_at <= $3"
            " AND (lease_until < $3 OR lease_owner = $1) AND paced_until <= $3"
            " ORDER BY start_at LIMIT $4"
            f" FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
            owner,
            now + lease_s,
            now,
            limit,
        )
        return [campaign_of(r) for r in rows]

    async def begin(self, campaign: Campaign, event: Event, now: float) -> int | None:
        async with self._db.transaction() as c:
            row = await c.fetchrow(
                "SELECT seq FROM campaigns WHERE id = $1 AND token = $2 AND state = 'running'"
                " FOR UPDATE",
                campaign.id,
                campaign.token,
            )
            if row is None:
                return None
            if row[0] is not None:
                return int(row[0])
            seq = int(await c.fetchval("SELECT nextval('events_seq')"))
            values = event_row(seq, event, 0, 0)
            await c.execute(INSERT_EVENTS, *([v] for v in values))
            await c.execute("UPDATE campaigns SET seq = $1 WHERE id = $2", seq, campaign.id)
            return seq

    async def advance(
        self,
        campaign: Campaign,
        outbound: Sequence[Outbound],
        *,
        cursor: str | None,
        band: tuple[int, int],
        targeted: int,
        finished: bool,
        paced_until: float,
        lease_until: float,
        now: float,
    ) -> bool:
        async with self._db.transaction() as c:
            moved = await c.fetchval(
                "WITH x AS (UPDATE campaigns SET cursor = $1, band_from = $2, band_to = $3,"
                " pages = pages + $4, targeted = targeted + $5, paced_until = $6,"
                " updated_at = $7, state = CASE WHEN $8 THEN 'completed' ELSE state END,"
                " lease_until = CASE WHEN $8 THEN 0 ELSE $11 END"
                " WHERE id = $9 AND token = $10 AND state = 'running' RETURNING 1)"
                " SELECT count(*) FROM x",
                cursor, band[0], band[1], len(outbound), targeted, paced_until, now,
                finished, campaign.id, campaign.token, lease_until,
            )  # fmt: skip
            if not moved:
                return False
            assert campaign.seq is not None
            await c.execute(
                ADVANCE,
                campaign.seq,
                campaign.pages,
                campaign.pages + len(outbound),
                targeted,
                finished,
                now,
            )
            await enqueue(c, outbound, now)
            return True
