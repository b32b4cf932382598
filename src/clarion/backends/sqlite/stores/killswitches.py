from __future__ import annotations

import sqlite3
from dataclasses import asdict

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores.audit import record_audit
from clarion.policy.killswitch import KillSwitch
from clarion.stores.rows import SWITCH_COLUMNS as _COLUMNS
from clarion.stores.rows import switch as _switch


def _json(switch: KillSwitch) -> str:
    return orjson.dumps(asdict(switch)).decode()


class SqliteKillSwitchStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, switch: KillSwitch) -> None:
        def _create(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT INTO kill_switches ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    switch.id,
                    switch.kind.value,
                    switch.value,
                    switch.reason,
                    switch.created_at,
                    switch.created_by,
                    switch.lifted_at,
                    switch.lifted_by,
                ),
            )
            record_audit(
                c,
                "kill_switch",
                switch.id,
                switch.created_by,
                switch.created_at,
                None,
                _json(switch),
            )

        await self._db.write(_create)

    async def lift(self, switch_id: str, at: float, actor: str) -> KillSwitch | None:
        def _lift(c: sqlite3.Connection) -> KillSwitch | None:
            row = c.execute(
                f"SELECT {_COLUMNS} FROM kill_switches WHERE id = ? AND lifted_at IS NULL",
                (switch_id,),
            ).fetchone()
            if row is None:
                return None
            before = _switch(row)
            c.execute(
                "UPDATE kill_switches SET lifted_at = ?, lifted_by = ? WHERE id = ?",
                (at, actor, switch_id),
            )
            after = KillSwitch(**(asdict(before) | {"lifted_at": at, "lifted_by": actor}))
            record_audit(c, "kill_switch", switch_id, actor, at, _json(before), _json(after))
            return after

        return await self._db.write(_lift)

    async def list(self, *, include_lifted: bool) -> list[KillSwitch]:
        where = "" if include_lifted else " WHERE lifted_at IS NULL"
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM kill_switches{where} ORDER BY created_at"
            ).fetchall()
        )
        return [_switch(r) for r in rows]
