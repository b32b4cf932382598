from __future__ import annotations

from dataclasses import asdict

import orjson

from clarion.backends.postgres import PostgresDatabase
from clarion.backends.postgres.stores.audit import record_audit
from clarion.policy.killswitch import KillSwitch
from clarion.stores.rows import SWITCH_COLUMNS, switch


def _json(s: KillSwitch) -> str:
    return orjson.dumps(asdict(s)).decode()


class PostgresKillSwitchStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create(self, s: KillSwitch) -> None:
        async with self._db.transaction() as c:
            await c.execute(
                f"INSERT INTO kill_switches ({SWITCH_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                s.id,
                s.kind.value,
                s.value,
                s.reason,
                s.created_at,
                s.created_by,
                s.lifted_at,
                s.lifted_by,
            )
            await record_audit(c, "kill_switch", s.id, s.created_by, s.created_at, None, _json(s))

    async def lift(self, switch_id: str, at: float, actor: str) -> KillSwitch | None:
        async with self._db.transaction() as c:
            row = await c.fetchrow(
                f"SELECT {SWITCH_COLUMNS} FROM kill_switches WHERE id = $1 AND lifted_at IS NULL"
                " FOR UPDATE",
                switch_id,
            )
            if row is None:
                return None
            before = switch(row)
            await c.execute(
                "UPDATE kill_switches SET lifted_at = $1, lifted_by = $2 WHERE id = $3",
                at,
                actor,
                switch_id,
            )
            after = KillSwitch(**(asdict(before) | {"lifted_at": at, "lifted_by": actor}))
            await record_audit(c, "kill_switch", switch_id, actor, at, _json(before), _json(after))
            return after

    async def list(self, *, include_lifted: bool) -> list[KillSwitch]:
        where = "" if include_lifted else " WHERE lifted_at IS NULL"
        rows = await self._db.fetch(
            f"SELECT {SWITCH_COLUMNS} FROM kill_switches{where} ORDER BY created_at"
        )
        return [switch(r) for r in rows]
