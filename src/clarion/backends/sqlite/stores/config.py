"""Control-plane records: templates, provider configurations, shared provider tokens,
status webhooks, and generated secrets."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import orjson

from clarion.backends.sqlite import SqliteDatabase
from clarion.stores.records import StatusHook, TemplateVersion
from clarion.stores.rows import HOOK_COLUMNS
from clarion.stores.rows import hook as hook_from_row
from clarion.types import JSONObject


class SqliteTemplateStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def put(self, template_id: str, doc: JSONObject, at: float, actor: str) -> int:
        raw = orjson.dumps(doc).decode()

        def _put(c: sqlite3.Connection) -> int:
            version = int(
                c.execute(
                    "SELECT coalesce(max(version), 0) + 1 FROM templates WHERE template_id = ?",
                    (template_id,),
                ).fetchone()[0]
            )
            c.execute(
                "INSERT INTO templates (template_id, version, doc, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (template_id, version, raw, at, actor),
            )
            return version

        return await self._db.write(_put)

    async def get(self, template_id: str, version: int | None = None) -> TemplateVersion | None:
        if version is None:
            sql = (
                "SELECT version, doc, created_at, created_by FROM templates"
                " WHERE template_id = ? ORDER BY version DESC LIMIT 1"
            )
            params: tuple[object, ...] = (template_id,)
        else:
            sql = (
                "SELECT version, doc, created_at, created_by FROM templates"
                " WHERE template_id = ? AND version = ?"
            )
            params = (template_id, version)
        row = await self._db.read(lambda c: c.execute(sql, params).fetchone())
        if row is None:
            return None
        return TemplateVersion(template_id, row[0], orjson.loads(row[1]), row[2], row[3])

    async def versions(self, template_id: str) -> list[int]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT version FROM templates WHERE template_id = ? ORDER BY version",
                (template_id,),
            ).fetchall()
        )
        return [r[0] for r in rows]


class SqliteProviderStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def put(self, name: str, doc: JSONObject, at: float) -> None:
        raw = orjson.dumps(doc).decode()
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO providers (name, doc, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET doc = excluded.doc,"
                " updated_at = excluded.updated_at",
                (name, raw, at),
            )
        )

    async def get(self, name: str) -> JSONObject | None:
        row = await self._db.read(
            lambda c: c.execute("SELECT doc FROM providers WHERE name = ?", (name,)).fetchone()
        )
        return None if row is None else orjson.loads(row[0])

    async def all(self) -> dict[str, JSONObject]:
        rows = await self._db.read(
            lambda c: c.execute("SELECT name, doc FROM providers ORDER BY name").fetchall()
        )
        return {r[0]: orjson.loads(r[1]) for r in rows}

    async def delete(self, name: str) -> bool:
        return await self._db.write(
            lambda c: c.execute("DELETE FROM providers WHERE name = ?", (name,)).rowcount > 0
        )


class SqliteProviderTokenStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def current(self, name: str) -> tuple[str, float] | None:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT token, issued_at FROM provider_tokens WHERE name = ?", (name,)
            ).fetchone()
        )
        return None if row is None else (row[0], row[1])

    async def replace(
        self, name: str, token: str, issued_at: float, *, expected: float | None
    ) -> bool:
        def _replace(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "SELECT issued_at FROM provider_tokens WHERE name = ?", (name,)
            ).fetchone()
            if (row[0] if row else None) != expected:
                return False
            c.execute(
                "INSERT INTO provider_tokens (name, token, issued_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET token = excluded.token,"
                " issued_at = excluded.issued_at",
                (name, token, issued_at),
            )
            return True

        return await self._db.write(_replace)


class SqliteStatusHookStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, hook: StatusHook) -> None:
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO status_hooks (id, sender, url, events, secrets, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    hook.id,
                    hook.sender,
                    hook.url,
                    orjson.dumps(sorted(hook.events)).decode(),
                    orjson.dumps(list(hook.secrets)).decode(),
                    hook.created_at,
                ),
            )
        )

    async def list(self, sender: str | None) -> list[StatusHook]:
        where, params = ("WHERE sender = ?", (sender,)) if sender is not None else ("", ())
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {HOOK_COLUMNS} FROM status_hooks {where} ORDER BY created_at",
                params,
            ).fetchall()
        )
        return [hook_from_row(r) for r in rows]

    async def delete(self, hook_id: str, sender: str | None) -> bool:
        sql = "DELETE FROM status_hooks WHERE id = ?"
        params: tuple[object, ...] = (hook_id,)
        if sender is not None:
            sql += " AND sender = ?"
            params += (sender,)
        return await self._db.write(lambda c: c.execute(sql, params).rowcount > 0)

    async def disable(self, hook_id: str, at: float) -> None:
        await self._db.write(
            lambda c: c.execute(
                "UPDATE status_hooks SET disabled_at = ? WHERE id = ?", (at, hook_id)
            )
        )


class SqliteSecretStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        def _get(c: sqlite3.Connection) -> str:
            c.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, make()))
            value: str = c.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()[
                0
            ]
            return value

        return await self._db.write(_get)
