"""Campaigns in the SQLite file. Every write of the expansion is fenced: it carries the
token its writer got with the lease, and is refused once anyone took the campaign over
(a lease that ran out) or an operator paused or cancelled it (which moves the token)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.broker import SqliteBroker
from clarion.backends.sqlite.stores.events import ADVANCE, INSERT_EVENT
from clarion.broker import Outbound
from clarion.campaigns.model import MOVES, Campaign, CampaignState
from clarion.models import Event
from clarion.stores.accepting import event_row

_COLUMNS = (
    "id, sender, doc, state, start_at, rollout_percent, created_at, updated_at, seq,"
    " band_from, band_to, cursor, pages, targeted, token, paced_until"
)
_CLAIMABLE = "('scheduled', 'running')"


def campaign_of(row: Any) -> Campaign:
    return Campaign(row[0], row[1], orjson.loads(row[2]), CampaignState(row[3]), *row[4:])


class SqliteCampaignStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, c: Campaign) -> None:
        await self._db.write(
            lambda conn: conn.execute(
                f"INSERT INTO campaigns ({_COLUMNS}) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (c.id, c.sender, orjson.dumps(c.doc).decode(), c.state.value, c.start_at,
                 c.rollout_percent, c.created_at, c.updated_at, c.seq, c.band_from, c.band_to,
                 c.cursor, c.pages, c.targeted, c.token, c.paced_until),
            )
        )  # fmt: skip

    async def get(self, campaign_id: str) -> Campaign | None:
        row = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,)
            ).fetchone()
        )
        return None if row is None else campaign_of(row)

    async def listed(self, sender: str | None) -> list[Campaign]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM campaigns WHERE ? IS NULL OR sender = ?"
                " ORDER BY created_at DESC, id",
                (sender, sender),
            ).fetchall()
        )
        return [campaign_of(r) for r in rows]

    async def move(self, campaign_id: str, action: str, now: float) -> Campaign | None:
        """Take ``action`` (``MOVES``) if the campaign is in a state it may be taken from;
        returns the campaign as it is after (unchanged if the move did not apply). The
        token moves too, so an expansion in progress stops at its next write."""
        allowed, to = MOVES[action]
        states = ", ".join(f"'{s.value}'" for s in allowed)

        def _move(c: sqlite3.Connection) -> Campaign | None:
            c.execute(
                f"UPDATE campaigns SET state = ?, token = token + 1, lease_until = 0,"
                f" updated_at = ? WHERE id = ? AND state IN ({states})",
                (to.value, now, campaign_id),
            )
            row = c.execute(
                f"SELECT {_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,)
            ).fetchone()
            return None if row is None else campaign_of(row)

        return await self._db.write(_move)

    async def raise_rollout(self, campaign_id: str, percent: int, now: float) -> Campaign | None:
        def _raise(c: sqlite3.Connection) -> Campaign | None:
            c.execute(
                "UPDATE campaigns SET rollout_percent = max(rollout_percent, ?), updated_at = ?,"
                " state = CASE WHEN state = 'completed' THEN 'running' ELSE state END"
                " WHERE id = ? AND state NOT IN ('cancelled')",
                (percent, now, campaign_id),
            )
            row = c.execute(
                f"SELECT {_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,)
            ).fetchone()
            return None if row is None else campaign_of(row)

        return await self._db.write(_raise)

    async def claim(self, owner: str, now: float, lease_s: float, limit: int) -> list[Campaign]:
        """Take the lease of campaigns due to run that nobody holds; each gets a new token."""

        def _claimable(c: sqlite3.Connection) -> list[str]:
            return [
                r[0]
                for r in c.execute(
                    f"SELECT id FROM campaigns WHERE state IN {_CLAIMABLE} AND start_at <= ?"
                    " AND (lease_until < ? OR lease_owner = ?) AND paced_until <= ?"
                    " ORDER BY start_at LIMIT ?",
                    (now, now, owner, now, limit),
                )
            ]

        def _claim(c: sqlite3.Connection) -> list[Campaign]:
            ids = _claimable(c)  # again, under the write lock: someone may have claimed
            c.executemany(
                "UPDATE campaigns SET state = 'running', lease_owner = ?, lease_until = ?,"
                " token = token + 1, updated_at = ? WHERE id = ?",
                [(owner, now + lease_s, now, i) for i in ids],
            )
            return [
                campaign_of(
                    c.execute(f"SELECT {_COLUMNS} FROM campaigns WHERE id = ?", (i,)).fetchone()
                )
                for i in ids
            ]

        # Every scheduler asks several times a second: only a claim takes the write lock.
        if not await self._db.read(_claimable):
            return []
        return await self._db.write(_claim)

    async def begin(self, campaign: Campaign, event: Event, now: float) -> int | None:
        """Create the campaign's event (its batches' header); None if the token is stale."""

        def _begin(c: sqlite3.Connection) -> int | None:
            row = c.execute(
                "SELECT seq FROM campaigns WHERE id = ? AND token = ? AND state = 'running'",
                (campaign.id, campaign.token),
            ).fetchone()
            if row is None:
                return None
            if row[0] is not None:
                return int(row[0])
            seq = int(c.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0])
            c.execute(INSERT_EVENT, event_row(seq, event, 0, 0))
            c.execute("UPDATE campaigns SET seq = ? WHERE id = ?", (seq, campaign.id))
            return seq

        return await self._db.write(_begin)

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
        """Write one page: its batches, the event's progress and the checkpoint, at once —
        or nothing, if the token is stale (another scheduler has it; it was paused)."""

        def _advance(c: sqlite3.Connection) -> bool:
            moved = c.execute(
                "UPDATE campaigns SET cursor = ?, band_from = ?, band_to = ?,"
                " pages = pages + ?, targeted = targeted + ?, paced_until = ?, updated_at = ?,"
                " state = CASE WHEN ? THEN 'completed' ELSE state END,"
                " lease_until = CASE WHEN ? THEN 0 ELSE ? END"
                " WHERE id = ? AND token = ? AND state = 'running'",
                (cursor, band[0], band[1], len(outbound), targeted, paced_until, now,
                 int(finished), int(finished), lease_until, campaign.id, campaign.token),
            ).rowcount  # fmt: skip
            if not moved:
                return False
            assert campaign.seq is not None
            c.execute(
                ADVANCE,
                {
                    "seq": campaign.seq,
                    "from_batch": campaign.pages,
                    "to_batch": campaign.pages + len(outbound),
                    "recipients": targeted,
                    "finished": int(finished),
                    "now": now,
                },
            )
            SqliteBroker.enqueue(c, outbound, now)
            return True

        return await self._db.write(_advance)
